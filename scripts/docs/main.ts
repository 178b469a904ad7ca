/** `npm run docs`: rewrite what the docs take from the code (the README's configuration table). */

import { fileURLToPath } from 'node:url';
import { writeReadme } from './settings-table';

writeReadme(fileURLToPath(new URL('../..', import.meta.url)));
process.stdout.write('README.md: configuration table written from lib/config/settings.ts\n');
