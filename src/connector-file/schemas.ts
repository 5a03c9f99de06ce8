/**
 * The two Purview EHR connector schemas, in their documented column order, with the mandatory ("*") flags: the one
 * definition every part of the bridge reads (mapping, push checks, docs tests).
 * See: docs/mapping.md §1.2–§1.3, https://learn.microsoft.com/en-us/purview/import-epic-data and
 * https://learn.microsoft.com/en-us/purview/import-healthcare-data.
 */
import type { Delimiter } from './delimiters.js';

export type ConnectorSchema = 'epic' | 'healthcare';

export interface SchemaColumn {
  readonly name: string;
  readonly mandatory: boolean;
  /**
   * Its values come from the EHR's code lists and clocks (event, category, action, department, BTG reason, state,
   * country, time, workstation), not about a person: their everyday words are no PHI (purview-words.ts).
   */
  readonly codeList: boolean;
}

const col = (name: string, mandatory = false, codeList = false): SchemaColumn => ({ name, mandatory, codeList });
/** A code-list column (SchemaColumn.codeList). */
const code = (name: string, mandatory = false): SchemaColumn => col(name, mandatory, true);

export const SCHEMA_COLUMNS: Readonly<Record<ConnectorSchema, readonly SchemaColumn[]>> = {
  epic: [
    code('ACCESS_LOG.ACCESS_TIME', true),
    code('ACCESS_LOG_METRIC.METRIC_NAME', true),
    code('ACCESS_LOG.WORKSTATION_ID'),
    code('ZC_METRIC_GROUP.NAME'),
    code('ZC_ACCESS_ACTION.NAME'),
    col('PATIENT.PAT_MRN_ID'),
    col('PATIENT.PAT_FIRST_NAME', true),
    col('PATIENT.PAT_MIDDLE_NAME'),
    col('PATIENT.PAT_LAST_NAME', true),
    col('PATIENT.ADD_LINE_1', true),
    col('PATIENT.ADD_LINE_2'),
    col('PATIENT.CITY', true),
    col('PATIENT.ZIP', true),
    code('ZC_STATE.NAME'),
    code('ZC_COUNTRY.NAME'),
    code('CLARITY_DEP.DEPARTMENT_NAME'),
    code('ZC_BTG_REASON.NAME', true),
    col('PAT_BTG_AUDIT.BTG_EXPLANATION'),
    col('EMP.SYSTEM_LOGIN', true),
    col('CLARITY_EMP.USER_ID'),
    col('employee_last_name'),
    col('employee_first_name'),
  ],
  healthcare: [
    code('Creation Time', true),
    code('Event Name', true),
    code('Workstation Id'),
    code('Event Section'),
    code('Event Category'),
    col('Patient Reg Id'),
    col('Patient First Name', true),
    col('Patient Middle Name'),
    col('Patient Last Name', true),
    col('Patient Address Line 1', true),
    col('Patient Address Line 2'),
    col('Patient City', true),
    col('Patient Zip Code', true),
    code('Patient State'),
    code('Patient Country'),
    code('Patient Department'),
    code('Restricted Access Reason', true),
    col('Restricted Access Comment'),
    col('Email Address (UPN) or SamAccountName', true),
    col('Employee User Name'),
    col('Employee Id'),
    col('Employee Last Name'),
    col('Employee First Name'),
  ],
};

/** The mandatory ("*") columns of each schema, in documented order: a file lacking one is not imported by Purview. */
export const MANDATORY_COLUMNS: Readonly<Record<ConnectorSchema, readonly string[]>> = Object.freeze({
  epic: Object.freeze(SCHEMA_COLUMNS.epic.filter((c) => c.mandatory).map((c) => c.name)),
  healthcare: Object.freeze(SCHEMA_COLUMNS.healthcare.filter((c) => c.mandatory).map((c) => c.name)),
});

/** Delimiters each connector accepts: Epic "pipe- or tab-separated", Healthcare also comma. */
export const SCHEMA_DELIMITERS: Readonly<Record<ConnectorSchema, readonly Delimiter[]>> = Object.freeze({
  epic: Object.freeze(['tab', 'pipe'] as const),
  healthcare: Object.freeze(['tab', 'pipe', 'comma'] as const),
});
