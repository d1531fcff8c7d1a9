/**
 * A mapping is typed by its entity: reading a field the entity does not have, or leaving out a required one, is a type
 * error
 * (`npm run typecheck` checks this file: an `@ts-expect-error` that no longer finds its error fails it).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlite } from "../../src/connectors/sqlite/index.ts";
import { bind, type Row } from "../../src/core/binding.ts";
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

  it("keep a literal returned for a literal-union field: no `as const`, and a literal outside the union is an error", async () => {
    const Ticket = entity("Ticket", {
      version: 1,
      key: "id",
      schema: Type.Object({
        id: Type.String(),
        status: Type.Union([Type.Literal("open"), Type.Literal("closed")]),
        priority: Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(3)]),
        origin: Type.Object({ channel: Type.Union([Type.Literal("mail"), Type.Literal("phone")]) }),
      }),
    });
    interface TicketRow extends Row {
      id: number;
      done: number;
    }
    const sync = bind(erp, Ticket, {
      table: "tickets",
      toCanonical: (row) => ({ id: String(row.id), status: "open", priority: 2, origin: { channel: "mail" } }),
    });
    const asynchronous = bind(erp, Ticket, {
      table: "tickets",
      toCanonical: async (row) => ({ id: String(row.id), status: "closed", priority: 3, origin: { channel: "phone" } }),
    });
    const typedRow = bind(erp, Ticket, {
      table: "tickets",
      toCanonical: async (row: TicketRow, ctx) => ({
        id: `${ctx.binding}-${row.id}`,
        status: row.done === 1 ? "closed" : "open",
        priority: row.done === 1 ? 1 : 3,
        origin: { channel: "mail" },
      }),
    });
    const target = bind(erp, Ticket, {
      table: "ticket_copies",
      fromCanonical: (ticket) => ({ code: ticket.id, state: ticket.status === "open" ? "o" : "c", level: 1 }),
    });
    bind(erp, Ticket, {
      table: "tickets",
      // @ts-expect-error "pending" is not one of the status literals
      toCanonical: (row) => ({ id: String(row.id), status: "pending", priority: 2, origin: { channel: "mail" } }),
    });
    bind(erp, Ticket, {
      table: "tickets",
      // @ts-expect-error 4 is not one of the priority literals (async)
      toCanonical: async (row) => ({ id: String(row.id), status: "open", priority: 4, origin: { channel: "mail" } }),
    });
    bind(erp, Ticket, {
      table: "tickets",
      // @ts-expect-error a nested literal outside its union
      toCanonical: (row) => ({ id: String(row.id), status: "open", priority: 2, origin: { channel: "fax" } }),
    });
    bind(erp, Ticket, {
      table: "tickets",
      // @ts-expect-error a string where the union of literals is expected
      toCanonical: (row) => ({
        id: String(row.id),
        status: String(row.status),
        priority: 2,
        origin: { channel: "mail" },
      }),
    });
    const context = { run: { id: 1, flow: "f" }, binding: "b", lookup: async () => undefined as never };
    assert.deepEqual(sync.toCanonical({ id: 7 }, context), {
      id: "7",
      status: "open",
      priority: 2,
      origin: { channel: "mail" },
    });
    assert.deepEqual(await asynchronous.toCanonical({ id: 8 }, context), {
      id: "8",
      status: "closed",
      priority: 3,
      origin: { channel: "phone" },
    });
    assert.deepEqual(await typedRow.toCanonical({ id: 9, done: 1 }, context), {
      id: "b-9",
      status: "closed",
      priority: 1,
      origin: { channel: "mail" },
    });
    const ticket = { id: "7", status: "open", priority: 2, origin: { channel: "mail" } } as const;
    assert.deepEqual(await target.fromCanonical(ticket, context, {} as never), { code: "7", state: "o", level: 1 });
  });
});
