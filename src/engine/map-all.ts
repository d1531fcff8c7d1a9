function isPromise(value: unknown): value is Promise<unknown> {
  return value !== null && typeof value === "object" && typeof (value as Promise<unknown>).then === "function";
}

/**
 * Applies a user mapping (sync or async) to every item of a chunk: the values in order, what each failing item
 * threw by its index, and whether some mapping returned a promise (`waited`). Awaits only then, and all of them
 * together, so a chunk's lookups run concurrently and a synchronous mapping costs no await per record.
 */
export async function mapAll<T, U>(
  items: readonly T[],
  map: (item: T, index: number) => U | Promise<U>,
): Promise<{ values: U[]; thrown: Map<number, unknown>; waited: boolean }> {
  const values = new Array<U>(items.length);
  const thrown = new Map<number, unknown>();
  let pending: Promise<void>[] | undefined;
  for (let i = 0; i < items.length; i++) {
    try {
      const value = map(items[i] as T, i);
      if (isPromise(value)) {
        pending ??= [];
        pending.push(
          value.then(
            (resolved) => {
              values[i] = resolved as U;
            },
            (error: unknown) => {
              thrown.set(i, error);
            },
          ),
        );
      } else {
        values[i] = value;
      }
    } catch (error) {
      thrown.set(i, error);
    }
  }
  if (pending !== undefined) await Promise.all(pending);
  return { values, thrown, waited: pending !== undefined };
}
