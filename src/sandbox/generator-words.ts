/** Fictional but realistic word lists for the generator (no packages). Some names are non-ASCII on purpose. */
export const GIVEN = [
  'James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth', 'William', 'Barbara',
  'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Carlos', 'Karen', 'Daniel', 'Lisa', 'Matthew', 'Nancy', 'José',
  'Zoë', 'Renée', 'Björn', 'Ingrid', 'Siobhán', 'Ana', 'Wei', 'Mei', 'Aarav', 'Priya', 'Kwame', 'Amara', 'Noah', 'Olivia', 'Liam',
];
export const FAMILY = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodríguez', 'Martinez', 'Hernández', 'Lopez',
  'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Pérez', 'Thompson', 'White', 'Harris',
  'Sánchez', 'Clark', 'Ramírez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Nguyen', 'Hill',
  'Østergaard', 'Müller', 'O\'Brien', 'van der Berg', 'Núñez', 'Kowalski', 'Chen', 'Okafor',
];
export const CJK_NAMES: ReadonlyArray<{ family: string; given: string }> = [
  { family: '张', given: '伟' }, { family: '李', given: '娜' }, { family: '王', given: '芳' },
];
export const STREETS = [
  'Oak St', 'Maple Ave', 'Cedar Ln', 'Elm St', 'Washington Blvd', 'Lake Shore Dr', 'Pine Rd', 'Hillcrest Dr', 'Sunset Blvd',
  'River Rd', 'Park Ave', 'Main St', 'Church St', 'Mill Rd', 'Highland Ave', 'Calle Real', 'Birch Way', 'Prairie Trl',
];
export const CITIES: ReadonlyArray<{ city: string; state: string; zip: string }> = [
  { city: 'Madison', state: 'WI', zip: '53703' }, { city: 'Verona', state: 'WI', zip: '53593' }, { city: 'Chicago', state: 'IL', zip: '60614' },
  { city: 'Boston', state: 'MA', zip: '02134' }, { city: 'Newark', state: 'NJ', zip: '07102' }, { city: 'Austin', state: 'TX', zip: '78701' },
  { city: 'Santa Fe', state: 'NM', zip: '87501' }, { city: 'Portland', state: 'ME', zip: '04101' }, { city: 'Denver', state: 'CO', zip: '80202' },
  { city: 'San José', state: 'CA', zip: '95113' },
];
/** Epic-like access-log metric names (ACCESS_LOG_METRIC.METRIC_NAME) as AuditEvent subtype displays. */
export const METRICS: ReadonlyArray<{ code: string; display: string; action: 'R' | 'U' | 'C' | 'E' }> = [
  { code: 'CHART_REVIEW', display: 'Chart Review Accessed', action: 'R' },
  { code: 'REPORT_VIEWED', display: 'Report Viewed', action: 'R' },
  { code: 'DEMOGRAPHICS', display: 'Patient Demographics Viewed', action: 'R' },
  { code: 'MED_LIST', display: 'Medication List Viewed', action: 'R' },
  { code: 'RESULTS', display: 'Results Review Accessed', action: 'R' },
  { code: 'NOTE_EDIT', display: 'Progress Note Edited', action: 'U' },
  { code: 'ORDER_ENTRY', display: 'Order Entered', action: 'C' },
  { code: 'PRINT', display: 'Chart Printed', action: 'E' },
];
export const BTG_EXPLANATIONS = [
  'Patient in ED, covering for attending',
  'Consult requested\tby phone | urgent',
  'Called by nursing\r\nto review meds',
  'Family asked for update',
  'Emergency override – unconscious patient',
];
