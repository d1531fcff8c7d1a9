import { type Connection, type Driver, type DriverEnv, isDriver } from "../connectors/types.ts";
import { ErrorCode, FrancaError } from "../core/errors.ts";
import type { System } from "../core/system.ts";

/** One open connection per system for the life of the engine, shared by all flows and lookups. */
export class ConnectionPool {
  readonly #env: DriverEnv;
  readonly #open = new Map<string, Connection>();

  constructor(env: DriverEnv) {
    this.#env = env;
  }

  get(system: System): Connection {
    let connection = this.#open.get(system.name);
    if (connection === undefined) {
      const driver = system.driver as unknown;
      if (!isDriver(driver)) {
        throw new FrancaError(ErrorCode.ConfigInvalid, `system '${system.name}' has no connector driver`, {
          setting: `systems.${system.name}`,
        });
      }
      connection = (driver as Driver).open(system, this.#env);
      this.#open.set(system.name, connection);
    }
    return connection;
  }

  async closeAll(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.allSettled(open.map((connection) => connection.close()));
  }
}
