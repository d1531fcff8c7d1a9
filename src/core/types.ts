/**
 * Canonical field types that the canonical model needs beyond TypeBox's basics. Money and exact decimals travel as
 * strings (or integer minor units), never as binary floats: 0.1 + 0.2 must not reach an invoice.
 */
import Type, { type TInteger, type TString } from "typebox";

export interface DecimalOptions {
  /** Most digits after the point, e.g. 2 for currency amounts. */
  scale?: number;
  description?: string;
}

/** An exact decimal as a string: `"1234.50"`, `"-0.125"`. */
export function Decimal(options: DecimalOptions = {}): TString {
  const fraction =
    options.scale === undefined ? "(\\.\\d+)?" : options.scale === 0 ? "" : `(\\.\\d{1,${options.scale}})?`;
  return Type.String({
    pattern: `^-?\\d+${fraction}$`,
    ...(options.description === undefined ? {} : { description: options.description }),
  });
}

/** A currency amount as a decimal string with at most two decimals: `"19.99"`. */
export function Money(description?: string): TString {
  return Decimal({ scale: 2, ...(description === undefined ? {} : { description }) });
}

/** An amount in integer minor units (cents): `1999`. */
export function MinorUnits(description?: string): TInteger {
  return Type.Integer(description === undefined ? {} : { description });
}

/** An instant as RFC 3339 text with its offset: `"2026-11-24T10:00:00Z"`. */
export function Timestamp(description?: string): TString {
  return Type.String({ format: "date-time", ...(description === undefined ? {} : { description }) });
}

/** A calendar date: `"2026-11-24"`. */
export function DateOnly(description?: string): TString {
  return Type.String({ format: "date", ...(description === undefined ? {} : { description }) });
}

/** An ISO 4217 currency code: `"EUR"`. */
export function CurrencyCode(): TString {
  return Type.String({ pattern: "^[A-Z]{3}$" });
}
