/**
 * The simulated API's hold: a test's gate on a route group's requests, let through only when the test says so.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startSimApi } from "../../sim/api.ts";
import { until } from "../support/poll.ts";

describe("simulated API: hold", () => {
  it("lets the first `passing` requests of the group through, holds the rest until released, and leaves other groups alone", async () => {
    await using api = await startSimApi({ collections: { items: { records: [{ id: "1" }, { id: "2" }] } } });
    const release = api.hold("list", 1);
    assert.equal((await fetch(`${api.url}/items`)).status, 200, "the first list request passes");
    let answered = false;
    const held = fetch(`${api.url}/items`).then((response) => {
      answered = true;
      return response;
    });
    // a request of another group, and one more of the held group's after it, go round while the second list waits
    assert.equal((await fetch(`${api.url}/items/2`)).status, 200);
    const alsoHeld = fetch(`${api.url}/items?page=2`);
    assert.equal((await fetch(`${api.url}/items/1`)).status, 200);
    await until(() => api.stats.inFlight === 2, "both held list requests in the server");
    assert.equal(answered, false, "the second list request is held");
    release();
    assert.equal((await held).status, 200);
    assert.equal((await alsoHeld).status, 200);
    assert.equal((await fetch(`${api.url}/items`)).status, 200, "released: the group's requests pass again");
  });

  it("answers a held request 503 when the server closes, and reset releases what is held", async (t) => {
    const api = await startSimApi({ collections: { items: { records: [{ id: "1" }] } } });
    t.after(() => api.close()); // closing again once closed below is harmless
    api.hold("get");
    const released = fetch(`${api.url}/items/1`);
    await until(() => api.stats.inFlight === 1, "the held request in the server");
    api.reset();
    assert.equal((await released).status, 200, "reset let the held request go");
    api.hold("get");
    const closed = fetch(`${api.url}/items/1`).then(
      (response) => response.status,
      () => "connection closed",
    );
    await until(() => api.stats.inFlight === 1, "the held request in the server");
    await api.close();
    assert.ok(["connection closed", 503].includes(await closed), "the held request ended with the server");
  });
});
