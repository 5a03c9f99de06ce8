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
}

const col = (name: string, mandatory = false): SchemaColumn => ({ name, mandatory });

export const SCHEMA_COLUMNS: Readonly<Record<ConnectorSchema, readonly SchemaColumn[]>> = {
  epic: [
    col('ACCESS_LOG.ACCESS_TIME', true),
    col('ACCESS_LOG_METRIC.METRIC_NAME', true),
    col('ACCESS_LOG.WORKSTATION_ID'),
    col('ZC_METRIC_GROUP.NAME'),
    col('ZC_ACCESS_ACTION.NAME'),
    col('PATIENT.PAT_MRN_ID'),
    col('PATIENT.PAT_FIRST_NAME', true),
    col('PATIENT.PAT_MIDDLE_NAME'),
    col('PATIENT.PAT_LAST_NAME', true),
    col('PATIENT.ADD_LINE_1', true),
    col('PATIENT.ADD_LINE_2'),
    col('PATIENT.CITY', true),
    col('PATIENT.ZIP', true),
    col('ZC_STATE.NAME'),
    col('ZC_COUNTRY.NAME'),
    col('CLARITY_DEP.DEPARTMENT_NAME'),
    col('ZC_BTG_REASON.NAME', true),
    col('PAT_BTG_AUDIT.BTG_EXPLANATION'),
    col('EMP.SYSTEM_LOGIN', true),
    col('CLARITY_EMP.USER_ID'),
    col('employee_last_name'),
    col('employee_first_name'),
  ],
  healthcare: [
    col('Creation Time', true),
    col('Event Name', true),
    col('Workstation Id'),
    col('Event Section'),
    col('Event Category'),
    col('Patient Reg Id'),
    col('Patient First Name', true),
    col('Patient Middle Name'),
    col('Patient Last Name', true),
    col('Patient Address Line 1', true),
    col('Patient Address Line 2'),
    col('Patient City', true),
    col('Patient Zip Code', true),
    col('Patient State'),
    col('Patient Country'),
    col('Patient Department'),
    col('Restricted Access Reason', true),
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
