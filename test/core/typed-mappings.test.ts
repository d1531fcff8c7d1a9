/**
 * A mapping is typed by its entity: reading a field the entity does not have, or leaving out a required one, is a type
 * error
 * (`npm run typecheck` checks this file: an `@ts-expect-error` that no longer finds its error fails it).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind } from "../../src/core/binding.ts";
import { entity } from "../../src/core/entity.ts";
import { Type } from "../../src/index.ts";

const Customer = entity("Customer", {
  version: 1,
  key: "id",
  schema: Type.Object({ id: Type.String(), name: Type.String(), note: Type.Optional(Type.String()) }),
});
const erp = sqlite("erp", { file: "erp.db" });

describe("typed mappings", () => {
  it("map the entity's fields, and only those, both ways", () => {
    const target = bind(erp, Customer, {
      table: "clients",
      key: "code",
      fromCanonical: (customer) => ({
        code: customer.id,
        full_name: customer.name,
        // @ts-expect-error a misspelt field of the record: written as NULL if it compiled
        nickname: customer.nam,
      }),
    });
    const source = bind(erp, Customer, {
      table: "customers",
      key: "id",
      // @ts-expect-error a record without the entity's required name
      toCanonical: (row) => ({ id: String(row.id) }),
    });
    const context = { run: { id: 1, flow: "f" }, binding: "b", lookup: async () => undefined as never };
    assert.deepEqual(target.fromCanonical({ id: "7", name: "Ada" }, context, {} as never), {
      code: "7",
      full_name: "Ada",
      nickname: undefined,
    });
    assert.deepEqual(source.toCanonical({ id: 7, name: "Ada" }, context), { id: "7" });
  });
});
