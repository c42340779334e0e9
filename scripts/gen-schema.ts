import { readFileSync, writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/json-schema.js';
import { configReferenceTable, REFERENCE_BEGIN, REFERENCE_END } from '../src/config/reference.js';

/** Regenerates docs/sluice.schema.json and the key table of docs/configuration.md from src/config/schema.ts. */
writeFileSync(new URL('../docs/sluice.schema.json', import.meta.url), JSON.stringify(configJsonSchema(), null, 2) + '\n');
const docUrl = new URL('../docs/configuration.md', import.meta.url);
const doc = readFileSync(docUrl, 'utf8');
const start = doc.indexOf(REFERENCE_BEGIN);
const end = doc.indexOf(REFERENCE_END);
if (start < 0 || end < start) throw new Error('docs/configuration.md lacks the reference markers');
writeFileSync(docUrl, doc.slice(0, start + REFERENCE_BEGIN.length) + '\n' + configReferenceTable() + '\n' + doc.slice(end));
