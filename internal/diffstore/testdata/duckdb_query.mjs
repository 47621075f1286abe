// Runs SQL queries with DuckDB (npm @duckdb/node-api) and prints each
// result as JSON rows, one line per query. Used by the Go tests to read the
// Parquet export with a reader this project did not write.
// usage: node duckdb_query.mjs '<json array of SQL strings>'
import { DuckDBInstance } from "@duckdb/node-api";

const queries = JSON.parse(process.argv[2]);
const db = await DuckDBInstance.create(":memory:");
const conn = await db.connect();
await conn.run("SET TimeZone = 'UTC'");
for (const q of queries) {
  const r = await conn.runAndReadAll(q);
  console.log(JSON.stringify(r.getRowObjectsJson()));
}
