/**
 * A MariaDB database of a test file's own, and the MySQL connector's connections to it: the database is created
 * before the file's tests and dropped after them, with every connection opened through `open` closed.
 */
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { after, before } from "node:test";
import mysql2 from "mysql2/promise";
import { type MysqlClient, mysql, mysqlDriver } from "../../src/connectors/mysql/index.ts";
import type { Connection } from "../../src/connectors/types.ts";

export interface MysqlTestDatabase {
  /** `<prefix>_<suffix>`. */
  readonly database: string;
  readonly url: string;
  /** Random, for names of the file's own (markers, other schemas). */
  readonly suffix: string;
  /** The file's first connection, and its client (from `before` on). */
  readonly connection: Connection;
  readonly db: MysqlClient;
  open(settings?: Parameters<typeof mysql>[1], name?: string): Connection;
  clientOf(from: Connection): MysqlClient;
  /** A raw mysql2 connection, outside the connector (a second session holding locks, say). */
  rawConnection(): Promise<mysql2.Connection>;
}

export function mysqlTestDatabase(prefix: string): MysqlTestDatabase {
  const suffix = randomBytes(5).toString("hex");
  const database = `${prefix}_${suffix}`;
  const url = `mysql://root@127.0.0.1:3306/${database}`;
  const opened: Connection[] = [];
  let connection: Connection | undefined;
  let db: MysqlClient | undefined;
  const open = (settings: Parameters<typeof mysql>[1] = { url }, name = "db"): Connection => {
    const made = mysqlDriver.open(mysql(name, settings), { baseDir: tmpdir() });
    opened.push(made);
    return made;
  };
  const clientOf = (from: Connection): MysqlClient =>
    (from.client as NonNullable<Connection["client"]>)() as MysqlClient;

  before(async () => {
    // node:test starts a file's top-level hooks without awaiting the one before: the file's own hook reading
    // `connection` runs at this one's first await, so both are set first (the pool connects on its first query).
    connection = open();
    db = clientOf(connection);
    const admin = open({ url: "mysql://root@127.0.0.1:3306/test" }, "admin");
    try {
      await clientOf(admin).query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    } finally {
      await admin.close();
    }
  });

  after(async () => {
    await (db as MysqlClient).query(`DROP DATABASE IF EXISTS \`${database}\``);
    for (const made of opened) await made.close();
  });

  return {
    database,
    url,
    suffix,
    get connection() {
      return connection as Connection;
    },
    get db() {
      return db as MysqlClient;
    },
    open,
    clientOf,
    rawConnection: () => mysql2.createConnection({ host: "127.0.0.1", user: "root", database }),
  };
}
