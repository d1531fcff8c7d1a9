import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

const host = hostname();
const instance = randomBytes(3).toString("hex");

/** This process's identity as a run owner: `host:pid:instance`. */
export function processOwner(): string {
  return `${host}:${process.pid}:${instance}`;
}

/**
 * True when `owner` names a process on this machine that no longer exists. A crash is then seen at once instead of
 * after the heartbeat timeout; owners on other machines are judged by their heartbeat alone.
 */
export function isOwnerDead(owner: string): boolean {
  const [ownerHost, pidText] = owner.split(":");
  if (ownerHost !== host) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return owner !== processOwner();
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
