/** Removes credentials from text that may quote a URL or a header (driver error messages do). */
export function redactSecrets(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^:/@\s]+):([^@/\s]+)@/gi, "$1$2:[redacted]@")
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 [redacted]")
    .replace(/\b(password|passwd|pwd|token|api[_-]?key|secret)=([^&\s]+)/gi, "$1=[redacted]");
}
