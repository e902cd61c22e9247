import { createRequire } from 'node:module';
const a = (await import('fs')).default; const b = (await import('node:fs')).default; const c = createRequire(import.meta.url)('fs');
console.log(a === b, b === c, typeof a.writeSync);
