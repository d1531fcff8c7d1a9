/**
 * A string that shares no memory with a text it may have been cut from, for a value kept beyond its chunk (a cache's
 * key). V8 makes `text.slice(…)` of 13 characters or more a view of `text` (a "sliced string"), which keeps the whole
 * text alive: a lookup key cut from a chunk's COPY text would keep that chunk's ~300 KB alive for as long as a cache
 * holds the key. JavaScript has no call to copy a string; hand-written because no library does this either: joining
 * a character in front makes a rope, and slicing the rope makes V8 copy it into one new flat string first (the rope
 * then points to the copy, not to the piece), of which the result is a view one character shorter. What a cache
 * keeps besides its keys is the lookup's own: a value that holds the key it was fetched for keeps that key's text.
 */
export function ownString(text: string): string {
  return text.length < 13 ? text : ` ${text}`.slice(1);
}
