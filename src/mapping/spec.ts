/**
 * The mapping-file format (mappings/*.json), as a zod schema with a JSON Schema export (mappings/mapping.schema.json).
 * A file says, per connector column, which FHIRPath expressions (or named built-ins) fill it, tried in order; the
 * first non-empty value wins. See: docs/mapping.md §3–§9, §12.1.
 */
import { z } from 'zod';
import { DELIMITER_INPUTS } from '../connector-file/index.js';

/** Named built-in functions a column may use where FHIRPath cannot say it cleanly (see builtins.ts). */
export const BUILTIN_NAMES = [
  'eventTime',
  'eventName',
  'workstation',
  'actionName',
  'mrn',
  'subjectMrn',
  'department',
  'btgReason',
  'btgComment',
  'userPinnedLogin',
  'userWorkEmail',
  'userLogin',
  'requestorLogin',
  'userId',
  'userLogicalId',
  'requestorFamilyName',
  'requestorGivenName',
] as const;
export type BuiltinName = (typeof BUILTIN_NAMES)[number];

export const DEPARTMENT_SOURCES = ['encounter-service-provider', 'encounter-location', 'requestor-location', 'practitioner-role-organization'] as const;
export type DepartmentSource = (typeof DEPARTMENT_SOURCES)[number];

const kebab = z.string().regex(/^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/, 'expected a kebab-case code such as "name-text-only"');

const expressionEntry = z.union([
  z.string().min(1).describe('FHIRPath over the AuditEvent, with %event, %requestor, %user, %patient, %name, %address, %t and the options as variables.'),
  z.strictObject({
    expression: z.string().min(1).describe('FHIRPath expression.'),
    warn: kebab.optional().describe('Warning code emitted (as "<code>:<column>") when this entry supplies the value.'),
  }),
  z.strictObject({
    builtin: z.enum(BUILTIN_NAMES).describe('Named built-in function.'),
    warn: kebab.optional().describe('Warning code emitted (as "<code>:<column>") when this entry supplies the value.'),
  }),
]);
export type ExpressionEntry = z.infer<typeof expressionEntry>;

const columnSpec = z.strictObject({
  name: z.string().min(1).describe('Schema column name, e.g. "PATIENT.ZIP" or "Patient Zip Code".'),
  label: z.string().min(1).optional().describe('Header text; default the column name.'),
  mandatory: z.boolean().optional().describe('Mandatory in the Purview schema (cannot be lowered); an empty cell warns, or rejects in strict mode.'),
  critical: z
    .union([z.boolean(), kebab])
    .optional()
    .describe('Reject the row when empty. A code groups columns: the row is rejected (reason "missing-<code>") only when every column of the group is empty.'),
  allowEmpty: z.boolean().optional().describe('Empty is a normal value (e.g. the BTG reason of a non-BTG access): no warning, strict mode keeps the row.'),
  join: z.string().optional().describe('Join every value of the winning expression with this separator; default: take the first value.'),
  expressions: z
    .array(expressionEntry)
    .min(1)
    .optional()
    .describe('Tried in order; the first non-empty value wins. Required unless the file extends a built-in mapping.'),
});
export type ColumnSpec = z.infer<typeof columnSpec>;

const stringList = z.array(z.string().min(1));

export const optionsSpec = z
  .looseObject({
    mrnSystems: stringList.optional().describe('Identifier systems whose value is the MRN, in preference order (before type code MR).'),
    mrnTypeTexts: stringList
      .optional()
      .describe(
        'Identifier type.text values (case-insensitive) that mark the MRN, e.g. a site text such as "CKDEHR"; tried after mrnSystems, before the defaults MRN, MR, EPI.',
      ),
    loginSystems: stringList.optional().describe('Identifier systems that hold the employee login (UPN or sAMAccountName).'),
    loginTypeTexts: stringList
      .optional()
      .describe("Practitioner identifier type.text values (case-insensitive) that mark the login; tried after loginSystems, before Epic's EMP record id."),
    loginRegex: z.string().optional().describe('A login taken from altId or an unsystemed identifier must match this (default: UPN-shaped).'),
    btgCodes: stringList.optional().describe('v3-ActReason codes that mean break-the-glass; default ["BTG"].'),
    btgDetailTypes: stringList.optional().describe('entity.detail.type values that carry the BTG free-text justification.'),
    userIdSystems: stringList.optional().describe('Identifier systems of the EHR internal user id (Employee Id).'),
    userIdTypeTexts: stringList
      .optional()
      .describe("Practitioner identifier type.text values (case-insensitive) that mark the user id; tried after userIdSystems, before Epic's EMP record id."),
    patientExtensionUrls: stringList.optional().describe('AuditEvent extensions whose valueReference is a patient subject.'),
    encounterExtensionUrls: stringList.optional().describe('AuditEvent extensions whose valueReference is the encounter.'),
    departmentSources: z.array(z.enum(DEPARTMENT_SOURCES)).optional().describe('Where the department comes from, first found wins.'),
    actionNames: z
      // Partial: a site overrides one action ("R": "View") and keeps the defaults for the others.
      .partialRecord(z.enum(['C', 'R', 'U', 'D', 'E']), z.string())
      .optional()
      .describe('Event Category text per AuditEvent.action; the actions not given keep their defaults.'),
    eventNameResourceType: z
      .enum(['rest', 'always', 'never'])
      .optional()
      .describe('Append the data resource type to the event name ("vread Patient"): for RESTful events only (default), always or never.'),
    excludeUsers: stringList
      .optional()
      .describe(
        "Users whose accesses give no row (skipped as excluded-user): the bridge's own user (Epic: the background user its client id is mapped to, whose every FHIR read Epic audits). Each entry is Type/id (the requestor's reference or its Practitioner), system|value (an identifier in that system), or a bare login or user id (altId, or an identifier the mapping takes as the user id or login); compared without case or padding.",
      ),
    parseCxIdentifiers: z.boolean().optional().describe('Read HL7v2 CX identifiers ("123^^^&1.2.3&ISO") as system urn:oid:1.2.3, value 123; default true.'),
  })
  .describe(
    "Named options, available to expressions as %<name>; an extra key is a variable of this file's own expressions and must be used by one (an unused unknown option is an error).",
  );

const skipSpec = z.strictObject({
  noPatient: z.boolean().optional().describe('Skip events without a patient subject (default true); otherwise they are rejected.'),
  nonHumanRequestor: z.boolean().optional().describe('Skip events whose requestor is a device or organization with no human agent (default true).'),
  patientRequestor: z.boolean().optional().describe('Skip events requested by the patient (portal users) (default true).'),
  failureOutcome: z.boolean().optional().describe('Skip events whose outcome is not 0 (success) (default true).'),
});

export const mappingFileSpec = z.strictObject({
  $schema: z.string().optional(),
  description: z.string().optional(),
  schema: z.enum(['epic', 'healthcare']).optional().describe('Purview connector schema; required unless "extends" names it.'),
  extends: z
    .enum(['epic', 'healthcare'])
    .optional()
    .describe('Start from the built-in mapping of this schema; columns listed here override it field by field.'),
  delimiter: z.enum(DELIMITER_INPUTS).optional().describe('Field delimiter: tab (default), pipe or comma (healthcare only; "csv" is its older name).'),
  timeFormat: z
    .string()
    .regex(/^(iso-utc|iso-offset|local:.+)$/, 'expected iso-utc, iso-offset or local:<IANA zone>')
    .optional()
    .describe('iso-utc (default), iso-offset (the source offset) or local:<IANA zone> (no offset).'),
  strict: z.boolean().optional().describe('Reject rows with any empty mandatory cell; default false.'),
  skip: skipSpec.optional(),
  options: optionsSpec.optional(),
  columns: z
    .array(columnSpec)
    .default([])
    .describe('One entry per schema column; a file that extends another lists only the columns it overrides (none: only options).'),
});
export type MappingFileSpec = z.infer<typeof mappingFileSpec>;

/** JSON Schema (2020-12) of the mapping-file format; mappings/mapping.schema.json is this, pretty-printed. */
export function mappingJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(mappingFileSpec, { io: 'input' }), title: 'Epic → Purview bridge mapping file' };
}

/**
 * Applies a file that `extends` a built-in mapping: options and skip merge key by key, columns merge field by field
 * by name. Pure; the caller (load.ts) reads the base file.
 */
export function mergeMappingSpecs(base: MappingFileSpec, own: MappingFileSpec): MappingFileSpec {
  const ownColumns = new Map(own.columns.map((column) => [column.name, column]));
  const columns = base.columns.map((column) => ({ ...column, ...ownColumns.get(column.name) }));
  const known = new Set(base.columns.map((column) => column.name));
  columns.push(...own.columns.filter((column) => !known.has(column.name)));
  const { extends: _ignored, ...rest } = own;
  return {
    ...base,
    ...rest,
    schema: own.schema ?? base.schema,
    skip: { ...base.skip, ...own.skip },
    options: { ...base.options, ...own.options },
    columns,
  };
}
