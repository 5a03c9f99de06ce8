/**
 * Lenient comparison of requested and granted SMART scopes. Servers may grant other scopes than requested (SMART
 * backend-services: "The client must not assume granted == requested"), and Epic echoes them in its own style:
 * without the `system/` prefix ("AuditEvent.read Patient.read") and, before August 2024, always in v1 form.
 * So `system/Patient.read`, `Patient.read`, `system/Patient.rs` and `system/*.read` all cover a request for
 * `system/Patient.read`.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html (v1 ⇒ v2 mapping)
 */

interface ResourceScope {
  readonly context: string | undefined;
  readonly resource: string;
  /** Interactions as v2 letters out of "cruds". */
  readonly permissions: ReadonlySet<string>;
  /** A v2 restriction (`?category=…`, without the `?`), or undefined for the whole resource type. */
  readonly restriction: string | undefined;
}

/** v1 suffixes mapped to v2 letters: ".read ⇒ .rs", ".write ⇒ .cud", ".* ⇒ .cruds". */
const V1_PERMISSIONS: Readonly<Record<string, string>> = { read: 'rs', write: 'cud', '*': 'cruds' };

const RESOURCE_SCOPE = /^(?:(system|user|patient)\/)?([A-Za-z]+|\*)\.([A-Za-z*]+)(?:\?(.*))?$/;

export function splitScopes(scope: string | undefined): string[] {
  return (scope ?? '').split(/\s+/).filter((s) => s.length > 0);
}

function parseResourceScope(scope: string): ResourceScope | undefined {
  const match = RESOURCE_SCOPE.exec(scope);
  if (!match) return undefined;
  const [, context, resource = '', suffix = '', restriction] = match;
  const letters = V1_PERMISSIONS[suffix] ?? suffix;
  if (!/^c?r?u?d?s?$/.test(letters) || letters.length === 0) return undefined;
  return { context, resource, permissions: new Set(letters), restriction: restriction || undefined };
}

/**
 * A restricted grant (`system/AuditEvent.rs?type=…`, SMART v2) lets the server filter what a search returns: it covers
 * only the same restriction, never the whole type, or events the server leaves out would be missing without a word.
 */
function applies(granted: ResourceScope, requested: ResourceScope): boolean {
  if (granted.context !== undefined && requested.context !== undefined && granted.context !== requested.context) return false;
  if (granted.restriction !== undefined && granted.restriction !== requested.restriction) return false;
  return granted.resource === '*' || granted.resource === requested.resource;
}

/** SMART v2 lets a server split one request over several grants (`Patient.r Patient.s` for `Patient.rs`): their union counts. */
function covered(grants: readonly ResourceScope[], requested: ResourceScope): boolean {
  const permissions = new Set<string>();
  for (const granted of grants) if (applies(granted, requested)) for (const permission of granted.permissions) permissions.add(permission);
  for (const permission of requested.permissions) if (!permissions.has(permission)) return false;
  return true;
}

/**
 * The requested scopes that no granted scope covers. A response without `scope` means "as requested"
 * (RFC 6749 §5.1), so it yields an empty list.
 */
export function scopesNotGranted(requested: string, granted: string | undefined): string[] {
  if (granted === undefined) return [];
  const grantedList = splitScopes(granted);
  const grantedResources = grantedList.map(parseResourceScope).filter((s): s is ResourceScope => s !== undefined);
  return splitScopes(requested).filter((scope) => {
    const wanted = parseResourceScope(scope);
    if (wanted === undefined) return !grantedList.includes(scope);
    return !covered(grantedResources, wanted);
  });
}
