/**
 * The canonical Invoice: the one shape that the ERP, billing and the warehouse are translated to and from.
 * Amounts are exact decimal strings ("123.45"), computed in integer cents: never binary floats.
 */
import { CurrencyCode, DateOnly, Decimal, entity, Money, Type } from "franca";

export const Invoice = entity("Invoice", {
  version: 1,
  key: "number",
  description: "An invoice for one ERP order, with its lines and taxes",
  schema: Type.Object(
    {
      number: Type.String({ pattern: "^INV-\\d+$" }),
      orderId: Type.Integer({ minimum: 1 }),
      customer: Type.Object(
        { id: Type.String(), name: Type.String({ minLength: 1 }), email: Type.String({ format: "email" }) },
        { additionalProperties: false },
      ),
      region: Type.String({ pattern: "^[A-Z]{2}(-[A-Z]{2})?$" }),
      currency: CurrencyCode(),
      issuedOn: DateOnly(),
      lines: Type.Array(
        Type.Object(
          {
            sku: Type.String({ minLength: 1 }),
            description: Type.String(),
            quantity: Type.Integer({ minimum: 1 }),
            unitPrice: Money(),
            taxRate: Decimal(),
            tax: Money(),
            amount: Money(),
          },
          { additionalProperties: false },
        ),
        { minItems: 1 },
      ),
      subtotal: Money(),
      tax: Money(),
      total: Money(),
    },
    { additionalProperties: false },
  ),
  fields: {
    customer: { pii: true, owner: "sales" },
    total: { owner: "finance" },
    tax: { owner: "tax", description: "sum of the lines' taxes, each rounded half up to the cent" },
  },
});

/** Cents as a decimal string: 12345 → "123.45". */
export function money(cents: number): string {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** `rate` (a decimal string such as "0.0725") of `cents`, rounded half up, in exact integer arithmetic. */
export function taxOf(cents: number, rate: string): number {
  const [whole = "0", fraction = ""] = rate.split(".");
  const scale = 10n ** BigInt(fraction.length);
  const numerator = BigInt(whole) * scale + BigInt(fraction === "" ? "0" : fraction);
  const product = BigInt(cents) * numerator;
  return Number((product * 2n + scale) / (scale * 2n));
}
