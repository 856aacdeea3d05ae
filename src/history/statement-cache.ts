/**
 * Prepared statements of a history file, kept by their SQL: preparing costs more than running a
 * small insert, and the day tables make the SQL vary only by table name. SELECTs are prepared raw
 * (rows as arrays: no object per row). A dropped table's statements must go with it.
 */
import type Database from "better-sqlite3";

export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  get(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (sql.startsWith("SELECT")) s.raw(true);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Forget the statements that name `table` (it was dropped). The SQL names it followed by a space. */
  forgetTable(table: string): void {
    for (const sql of [...this.statements.keys()]) if (sql.includes(` ${table} `)) this.statements.delete(sql);
  }
}
