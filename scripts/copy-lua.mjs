// Copies every .lua file under src/ to the same place under dist/, because tsc
// emits only JavaScript and src/storage/redis/scripts.ts reads its Lua scripts
// from `./lua/` next to itself (issue 11, item 5). A file whose copy is already
// current is not rewritten, so a second `npm start` never truncates a file that a
// relay started by the first one is reading. It also copies the dashboard's page,
// scripts and styles (src/dashboard/, issue 12), which the relay serves from
// dist/dashboard/.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'src');
// An argument names another output directory (the bench's build, dist-bench/src).
const outDir = join(root, process.argv[2] ?? 'dist');

if (!existsSync(outDir)) {
  process.stderr.write(`copy-lua: ${relative(root, outDir)}/ does not exist; run tsc first\n`);
  process.exit(1);
}

const dashboardDir = join(srcDir, 'dashboard');
let found = 0;
let dashboardFiles = 0;
let copied = 0;
for (const entry of readdirSync(srcDir, { recursive: true, withFileTypes: true })) {
  const inDashboard = entry.parentPath === dashboardDir || entry.parentPath.startsWith(dashboardDir + sep);
  if (!entry.isFile() || !(entry.name.endsWith('.lua') || inDashboard)) continue;
  if (inDashboard) dashboardFiles += 1;
  else found += 1;
  const from = join(entry.parentPath, entry.name);
  const to = join(outDir, relative(srcDir, from));
  if (existsSync(to) && readFileSync(to).equals(readFileSync(from))) continue;
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to);
  copied += 1;
}
if (found === 0) {
  process.stderr.write('copy-lua: no .lua files found under src/\n');
  process.exit(1);
}
if (dashboardFiles === 0) {
  process.stderr.write('copy-lua: no dashboard files found under src/dashboard/\n');
  process.exit(1);
}
process.stdout.write(`copy-lua: ${found} Lua files and ${dashboardFiles} dashboard files in ${relative(root, outDir)}/ (${copied} copied)\n`);
