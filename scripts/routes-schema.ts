import { writeFileSync } from 'node:fs';
import { routesJsonSchemaText } from '../src/config/routes-schema.js';

/** Writes docs/routes.schema.json from the zod schema that validates ROUTES_FILE (a test keeps the two equal). */
const target = new URL('../docs/routes.schema.json', import.meta.url);
writeFileSync(target, routesJsonSchemaText());
process.stdout.write(`wrote ${target.pathname}\n`);
