/**
 * Epic-style identifier systems of a fictional sandbox organisation (CID 999, non-production environment 3).
 * Pattern `1.2.840.114350.1.13.<CID>.<env>.7.<kind>.<value>`, see smart-backend-epic.md §3.9: `.7.2.<INI as ASCII>`
 * names a master file (EMP 697780, SER 836982, EPT 698084); `.7.5.737384.<n>` an IIT id type (the MRN).
 */
const ROOT = 'urn:oid:1.2.840.114350.1.13.999.3.7';

export const SANDBOX_IDS = {
  mrnSystem: `${ROOT}.5.737384.14`,
  empSystem: `${ROOT}.2.697780`,
  serSystem: `${ROOT}.2.836982`,
  patientInternalSystem: `${ROOT}.2.698084`,
  npiSystem: 'http://hl7.org/fhir/sid/us-npi',
  workstationPrefix: 'WS',
  emailDomain: 'contoso-health.example',
} as const;

export const CODE_SYSTEMS = {
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  v20203: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  securityRole: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type',
  eventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  localReason: 'urn:oid:1.2.840.114350.1.13.999.3.7.4.698084.10',
} as const;
