/**
 * Built-in word lists for the sandbox generator (no packages). Common first and last names combined at random give
 * realistic but fictional people; some are non-ASCII on purpose (é, ñ, ø, ü, 张) so the bridge is tested without
 * transliteration (docs/mapping.md §8.3). Phone numbers use the 555-01xx range reserved for fiction.
 */

export const GIVEN_FEMALE = [
  'Mary',
  'Patricia',
  'Jennifer',
  'Linda',
  'Elizabeth',
  'Barbara',
  'Susan',
  'Jessica',
  'Sarah',
  'Karen',
  'Lisa',
  'Nancy',
  'Emily',
  'Grace',
  'Hannah',
  'Olivia',
  'Sophia',
  'Ava',
  'Camila',
  'María',
  'Sofía',
  'Inés',
  'Chloé',
  'Zoë',
  'Renée',
  'Ingrid',
  'Siobhán',
  'Freya',
  'Ana',
  'Mei',
  'Priya',
  'Amara',
  'Ngozi',
  'Aiko',
  'Leilani',
  'Fatima',
] as const;

export const GIVEN_MALE = [
  'James',
  'Robert',
  'John',
  'Michael',
  'David',
  'William',
  'Richard',
  'Joseph',
  'Thomas',
  'Charles',
  'Daniel',
  'Matthew',
  'Anthony',
  'Mark',
  'Steven',
  'Noah',
  'Liam',
  'Ethan',
  'Carlos',
  'José',
  'Andrés',
  'Mateo',
  'Tomás',
  'Björn',
  'Søren',
  'Jürgen',
  'François',
  'Wei',
  'Hiroshi',
  'Aarav',
  'Kwame',
  'Omar',
  'Dmitri',
  'Kai',
  'Malik',
  'Rafael',
] as const;

export const FAMILY = [
  'Smith',
  'Johnson',
  'Williams',
  'Brown',
  'Jones',
  'Garcia',
  'Miller',
  'Davis',
  'Rodríguez',
  'Martinez',
  'Hernández',
  'Lopez',
  'Gonzalez',
  'Wilson',
  'Anderson',
  'Thomas',
  'Taylor',
  'Moore',
  'Jackson',
  'Martin',
  'Lee',
  'Pérez',
  'Thompson',
  'White',
  'Harris',
  'Sánchez',
  'Clark',
  'Ramírez',
  'Lewis',
  'Robinson',
  'Walker',
  'Young',
  'Allen',
  'King',
  'Wright',
  'Scott',
  'Nguyen',
  'Hill',
  'Muñoz',
  'Peña',
  'Ibáñez',
  'Østergaard',
  'Søndergaard',
  'Müller',
  'Schäfer',
  "O'Brien",
  'van der Berg',
  'de la Cruz',
  'Kowalski',
  'Nowak',
  'Chen',
  'Okafor',
  'Mensah',
  'Haddad',
  'Kim',
  'Patel',
  'Novák',
] as const;

/** Everyday names people go by (Patient.name use 'usual'). */
export const NICKNAMES = ['Bobby', 'Liz', 'Kate', 'Chuy', 'Pepe', 'Mimi', 'Tony', 'Sam', 'Bea', 'Jo', 'Nico', 'Teddy', 'Lulu'] as const;

/** CJK names are written family-first; `text` carries the whole name as Epic sends it. */
export const CJK_NAMES: ReadonlyArray<{ readonly family: string; readonly given: string }> = [
  { family: '张', given: '伟' },
  { family: '王', given: '芳' },
  { family: '李', given: '娜' },
  { family: '刘', given: '敏' },
  { family: '陈', given: '静' },
  { family: '杨', given: '强' },
];

export const PRACTITIONER_SUFFIXES = ['MD', 'DO', 'RN', 'NP', 'PA-C', 'PharmD'] as const;
export const PATIENT_SUFFIXES = ['Jr.', 'Sr.', 'III'] as const;

export const STREETS = [
  'Oak St',
  'Maple Ave',
  'Cedar Ln',
  'Elm St',
  'Washington Blvd',
  'Lake Shore Dr',
  'Pine Rd',
  'Hillcrest Dr',
  'Sunset Blvd',
  'River Rd',
  'Park Ave',
  'Main St',
  'Church St',
  'Mill Rd',
  'Highland Ave',
  'Calle Real',
  'Birch Way',
  'Prairie Trl',
  'Camino del Sol',
  'Old County Rd',
  'Willow Ct',
  'Harbor View Ter',
] as const;

export const SECOND_LINES = ['Apt 4B', 'Apt 12', 'Unit 7', 'Ste 300', 'Fl 2', 'Apt 1A', 'Lot 18', 'Rm 210'] as const;

/** Real city, state and a real 5-digit ZIP (strings: New England ZIPs start with 0). */
export const PLACES: ReadonlyArray<{ readonly city: string; readonly state: string; readonly zip: string }> = [
  { city: 'Madison', state: 'WI', zip: '53703' },
  { city: 'Verona', state: 'WI', zip: '53593' },
  { city: 'Milwaukee', state: 'WI', zip: '53202' },
  { city: 'Chicago', state: 'IL', zip: '60614' },
  { city: 'Minneapolis', state: 'MN', zip: '55401' },
  { city: 'Boston', state: 'MA', zip: '02134' },
  { city: 'Newark', state: 'NJ', zip: '07102' },
  { city: 'Portland', state: 'ME', zip: '04101' },
  { city: 'Hartford', state: 'CT', zip: '06103' },
  { city: 'Burlington', state: 'VT', zip: '05401' },
  { city: 'Austin', state: 'TX', zip: '78701' },
  { city: 'Santa Fe', state: 'NM', zip: '87501' },
  { city: 'Española', state: 'NM', zip: '87532' },
  { city: 'Cañon City', state: 'CO', zip: '81212' },
  { city: 'Denver', state: 'CO', zip: '80202' },
  { city: 'San José', state: 'CA', zip: '95113' },
];

/** Departments by workstation floor (Epic joins ACCESS_LOG.WORKSTATION_ID → CLARITY_LWS → CLARITY_DEP). */
export const DEPARTMENTS = [
  'EMERGENCY DEPT',
  'RADIOLOGY',
  'MED SURG 3 WEST',
  'CARDIOLOGY CLINIC',
  'ONCOLOGY INFUSION',
  'LABOR AND DELIVERY',
  'PEDIATRICS',
  'HEALTH INFORMATION MGMT',
] as const;

export interface Metric {
  readonly code: string;
  readonly display: string;
  readonly action: 'C' | 'R' | 'U' | 'E';
  readonly weight: number;
}

/** Epic-like access-log metrics (ACCESS_LOG_METRIC.METRIC_NAME) as AuditEvent subtype; codes are fictional METRIC_IDs. */
export const METRICS: readonly Metric[] = [
  { code: '17001', display: 'Chart Review Accessed', action: 'R', weight: 30 },
  { code: '17012', display: 'Report Viewed', action: 'R', weight: 12 },
  { code: '17020', display: 'Patient Demographics Viewed', action: 'R', weight: 10 },
  { code: '17031', display: 'Medication List Viewed', action: 'R', weight: 8 },
  { code: '17040', display: 'Results Review Accessed', action: 'R', weight: 10 },
  { code: '17052', display: 'Problem List Viewed', action: 'R', weight: 5 },
  { code: '17063', display: 'Progress Note Edited', action: 'U', weight: 6 },
  { code: '17070', display: 'Allergies Updated', action: 'U', weight: 3 },
  { code: '17081', display: 'Order Entered', action: 'C', weight: 5 },
  { code: '17090', display: 'Clinical Note Created', action: 'C', weight: 4 },
  { code: '17102', display: 'Chart Printed', action: 'R', weight: 3 },
  { code: '17115', display: 'Report Exported', action: 'E', weight: 2 },
];

export const SEARCH_METRIC = { code: '17200', display: 'Patient Lookup Search' } as const;

/** Restricted-access reasons as a site's ZC_BTG_REASON list would name them. */
export const BTG_REASONS: ReadonlyArray<{ readonly code: string; readonly display: string }> = [
  { code: '1', display: 'Emergency Care' },
  { code: '2', display: 'Direct Patient Care' },
  { code: '3', display: 'Covering Provider' },
  { code: '4', display: 'Scheduling' },
  { code: '5', display: 'Quality Review' },
];

/**
 * Free-text BTG explanations; several carry tabs, pipes, line breaks or quotes that the mapper must sanitise
 * (docs/mapping.md §8.3).
 */
export const BTG_EXPLANATIONS = [
  'Patient in ED, covering for attending',
  'Consult requested\tby phone | urgent',
  'Called by nursing\r\nto review meds',
  'Family asked for update\nsee note',
  'Emergency override – unconscious patient',
  'Per "code blue" protocol',
  'Reviewing labs\u2028before transfer',
  'Cross-cover|night shift',
] as const;
