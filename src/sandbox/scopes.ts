/** What a sandbox access token's granted scope allows (the FHIR server's searches and reads, and its `$export`). */

/**
 * Whether a granted scope lets a backend service do `interaction` on `resourceType`: SMART v1 `.read` and `.*` allow
 * both; a v2 scope needs its letter, `r` for a read (GET [type]/[id]) and `s` for a search (GET [type]?…), so
 * `system/Patient.rs` allows both and `system/Patient.r` no search. The `system/` prefix is optional, as Epic echoes
 * granted scopes without it.
 * See: https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html ("c r u d s")
 */
export function scopeAllows(scope: string, resourceType: string, interaction: 'read' | 'search'): boolean {
  return scope.split(/\s+/).some((granted) => {
    const match = /^(?:system\/)?([A-Za-z*]+)\.(read|\*|[cruds]+)$/.exec(granted);
    if (!match || (match[1] !== resourceType && match[1] !== '*')) return false;
    const access = match[2] as string;
    return access === 'read' || access === '*' || access.includes(interaction === 'read' ? 'r' : 's');
  });
}
