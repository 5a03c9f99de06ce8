/**
 * Generates docs/configuration.md from the schema: every key, type, default, description and env var.
 * A test regenerates it and compares with the checked-in file, so the reference never drifts.
 */
import { z } from 'zod';
import { ENV_PREFIX } from './load.js';
import { configSchema } from './schema.js';

interface JsonSchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  oneOf?: JsonSchemaNode[];
  const?: unknown;
  required?: string[];
  format?: string;
  minimum?: number;
  maximum?: number;
}

export function configReferenceMarkdown(): string {
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
  const rows: string[] = [];
  walk(root, [], rows);
  return [
    '# Configuration reference',
    '',
    'Generated from `src/config/schema.ts` by `npm run docs:config`; a test fails when this file is out of date.',
    '',
    'Precedence: defaults < config file (`--config` or `$BRIDGE_CONFIG`, YAML or JSON) < environment < command-line flags.',
    `Any key can be set from the environment as \`${ENV_PREFIX}\` + its path joined by \`__\`, e.g. \`${ENV_PREFIX}connectors__0__fhir__baseUrl\`.`,
    'A list entry is named by its position from 0 (a connector by its place in `connectors`, not its name; the next free position',
    'adds one). A value that parses as JSON is taken as such: numbers and booleans, and lists or sections written as JSON',
    `(\`${ENV_PREFIX}server__apiTokenSha256='["<hash>"]'\`). A refused value is named by its variable.`,
    'Secrets are never values: use `{ env: NAME }` or `{ file: path }`.',
    '',
    '| key | type | default | required | env var | description |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

function walk(node: JsonSchemaNode, path: string[], rows: string[], required = false): void {
  const variants = taggedVariants(node);
  if (variants) {
    // A section whose `type` chooses its keys (connectors[].source): the section, its `type`, then each variant's own
    // keys, marked with the type they belong to.
    rows.push(row(path, node, required));
    rows.push(row([...path, 'type'], { type: 'string', enum: variants.map(([name]) => name), description: 'Which of the variants below.' }, true));
    for (const [name, variant] of variants) {
      for (const [key, child] of Object.entries(variant.properties ?? {})) {
        if (key === 'type') continue;
        const marked = { ...child, description: `(${name}) ${child.description ?? ''}`.trim() };
        walk(marked, [...path, key], rows, variant.required?.includes(key) ?? false);
      }
    }
    return;
  }
  if (node.properties) {
    if (path.length > 0) rows.push(row(path, node, required));
    for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key], rows, node.required?.includes(key) ?? false);
    return;
  }
  if (node.type === 'array' && node.items?.properties) {
    rows.push(row(path, node, required));
    walk(node.items, [...path, '0'], rows, true);
    return;
  }
  rows.push(row(path, node, required));
}

function row(path: string[], node: JsonSchemaNode, required: boolean): string {
  const key = path.join('.').replace(/\.0(\.|$)/g, '[]$1');
  const env = ENV_PREFIX + path.join('__');
  const def = node.default === undefined ? '' : `\`${JSON.stringify(node.default)}\``;
  return `| \`${key}\` | ${typeOf(node)} | ${def} | ${required && node.default === undefined ? 'yes' : ''} | \`${env}\` | ${(node.description ?? '').replace(/\|/g, '\\|')} |`;
}

/** The variants of a union of objects told apart by a constant `type`, with that constant; else undefined. */
function taggedVariants(node: JsonSchemaNode): Array<[string, JsonSchemaNode]> | undefined {
  const members = node.oneOf ?? node.anyOf;
  if (!members || members.length < 2) return undefined;
  const tagged = members.map((member): [string, JsonSchemaNode] | undefined => {
    const tag = member.properties?.['type']?.const;
    return typeof tag === 'string' ? [tag, member] : undefined;
  });
  return tagged.every((entry) => entry !== undefined) ? (tagged as Array<[string, JsonSchemaNode]>) : undefined;
}

function typeOf(node: JsonSchemaNode): string {
  const variants = taggedVariants(node);
  if (variants) return `object (type ${variants.map(([name]) => `\`${name}\``).join(' \\| ')})`;
  if (node.enum) return node.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (node.anyOf) return node.anyOf.map(typeOf).join(' \\| ');
  if (node.properties) return `{ ${Object.keys(node.properties).join(', ')} }`;
  const type = Array.isArray(node.type) ? node.type.join(' \\| ') : (node.type ?? 'object');
  const max = node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
  const bounds = node.minimum !== undefined || max !== undefined ? ` (${node.minimum ?? ''}…${max ?? ''})` : '';
  return (node.format ? `${type} (${node.format})` : type) + bounds;
}
