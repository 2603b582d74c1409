// drizzle-kit's settings: control-plane/db/schema.ts is the schema, migrations/ the output.
// `npm run db:generate` writes the next migrations/NNNN_<name>.sql and its snapshot in
// migrations/meta/; control-plane/db/migrate.ts applies it (docs/database.md).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './control-plane/db/schema.ts',
  out: './migrations',
  // the generated file's first statement is preceded by nothing; migrate.ts runs a file whole
  breakpoints: true,
});
