/**
 * Epic-style identifier systems of a fictional Epic customer (CID 999, production environment 2), shaped like what
 * Epic's public sandbox returns for its test patients and providers: identifiers typed by `type.text` only, with Epic
 * OIDs as systems and no v2-0203 coding. Epic's pattern is `1.2.840.114350.1.13.<CID>.<EnvType>.7.<kind>.<value>`
 * (EnvType 1 sandbox, 2 production, 3 non-production); `.7.2.<INI as ASCII codes>` names a master file (EMP 697780
 * users, SER 836982 providers, EPT 698084 patients, WPR 878082 MyChart) and `.7.5.737384.<n>` an IIT id type (14 the
 * MRN "EPI", 0 Epic's enterprise id "EPIC", 6 the provider id "PROVID"). See docs/epic-smart.md §7.1, §7.2.
 * "OIDs should be treated as opaque": a site tells the bridge which is which through its mapping options.
 */
const ROOT = 'urn:oid:1.2.840.114350.1.13.999.2.7';

export const SANDBOX_IDS: {
  /** Patient MRN: IIT id type 14, type.text 'EPI' as in Epic's sandbox. Some patients also carry an older one, use 'old'. */
  readonly mrnSystem: string;
  /** EMP master file: the user record id, which is the login here (EMP.SYSTEM_LOGIN); 'INTERNAL' padded, 'EXTERNAL' plain. */
  readonly empSystem: string;
  /** SER master file: the provider record id (CLARITY_EMP.USER_ID in the sandbox mapping); 'INTERNAL' padded, 'EXTERNAL' plain. */
  readonly serSystem: string;
  /** EPT master file: Epic's patient record id, 'EXTERNAL' plain and 'INTERNAL' space-padded like Epic's. */
  readonly patientInternalSystem: string;
  /** IIT 0, type.text 'EPIC': Epic's enterprise patient id ('E5183'), a decoy beside the MRN. */
  readonly enterpriseIdSystem: string;
  /** type.text 'MYCHARTLOGIN': the patient's portal login, a decoy. */
  readonly myChartLoginSystem: string;
  /** IIT 6, type.text 'PROVID': the provider id. */
  readonly providerIdSystem: string;
  /** Epic's untyped payer member id, a decoy without a type. */
  readonly payerMemberSystem: string;
  readonly npiSystem: string;
  /** Workstation ids look like `WS-4F-0123`. */
  readonly workstationPrefix: string;
  /** Work emails are `<login lowercase>@<emailDomain>`; `.example` is reserved (RFC 2606). */
  readonly emailDomain: string;
  /** The organisation's zone: AuditEvent times are mostly written as its local offset (−06:00 MDT, −07:00 MST). */
  readonly timeZone: 'America/Denver';
} = {
  mrnSystem: `${ROOT}.5.737384.14`,
  empSystem: `${ROOT}.2.697780`,
  serSystem: `${ROOT}.2.836982`,
  patientInternalSystem: `${ROOT}.2.698084`,
  enterpriseIdSystem: `${ROOT}.5.737384.0`,
  myChartLoginSystem: `${ROOT}.3.878082.110`,
  providerIdSystem: `${ROOT}.5.737384.6`,
  payerMemberSystem: 'https://open.epic.com/FHIR/StructureDefinition/PayerMemberId',
  npiSystem: 'http://hl7.org/fhir/sid/us-npi',
  workstationPrefix: 'WS',
  emailDomain: 'contoso-health.example',
  timeZone: 'America/Denver',
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
