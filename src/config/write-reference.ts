/** `npm run docs:config`: rewrites docs/configuration.md from the schema. */
import { writeFileSync } from 'node:fs';
import { configReferenceMarkdown } from './reference.js';

writeFileSync(new URL('../../docs/configuration.md', import.meta.url), configReferenceMarkdown());
