/**
 * Epic-style identifier systems of a fictional sandbox organisation (CID 999, non-production environment 3).
 * Epic's pattern is `1.2.840.114350.1.13.<CID>.<EnvType>.7.<kind>.<value>` (EnvType 1 sandbox, 2 production,
 * 3 non-production); `.7.2.<INI as ASCII codes>` names a master file (EMP 697780 users, SER 836982 providers,
 * EPT 698084 patients) and `.7.5.737384.<n>` an IIT id type (the MRN). See smart-backend-epic.md §3.9.
 * "OIDs should be treated as opaque": the bridge reads these only through site mapping options.
 */
const ROOT = 'urn:oid:1.2.840.114350.1.13.999.3.7';

export const SANDBOX_IDS: {
  /** Patient MRN (IIT id type 14, type.text 'EPI' as in Epic's sandbox). */
  readonly mrnSystem: string;
  /** EMP master file: the user's login (EMP.SYSTEM_LOGIN), type.text 'EXTERNAL'. */
  readonly empSystem: string;
  /** SER master file: the provider record id (CLARITY_EMP.USER_ID in the sandbox mapping). */
  readonly serSystem: string;
  /** EPT master file: Epic's internal patient id, space-padded like Epic's. */
  readonly patientInternalSystem: string;
  readonly npiSystem: string;
  /** Workstation ids look like `WS-4F-0123`. */
  readonly workstationPrefix: string;
  /** Work emails are `<login lowercase>@<emailDomain>`; `.example` is reserved (RFC 2606). */
  readonly emailDomain: string;
} = {
  mrnSystem: `${ROOT}.5.737384.14`,
  empSystem: `${ROOT}.2.697780`,
  serSystem: `${ROOT}.2.836982`,
  patientInternalSystem: `${ROOT}.2.698084`,
  npiSystem: 'http://hl7.org/fhir/sid/us-npi',
  workstationPrefix: 'WS',
  emailDomain: 'contoso-health.example',
};

/** Code systems the generated AuditEvents use (FHIR R4 terminology, DICOM, and two fictional local Epic lists). */
export const CODE_SYSTEMS = {
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  v20203: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  securityRole: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type',
  sourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  /** Access-log metric ids (ACCESS_LOG_METRIC), a fictional local list. */
  accessMetric: `${ROOT}.2.657784`,
  /** Break-the-glass reasons (ZC_BTG_REASON), a fictional local list. */
  btgReason: `${ROOT}.4.698084.10`,
} as const;
