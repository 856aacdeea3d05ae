/**
 * Bearer tokens. A token names one tenant and one role. Without a token file (the embedded
 * single-node default) auth is off and every request is tenant `default` with every right.
 *
 * Token file (JSON): { "tokens": [ { "token": "s3cret", "tenant": "acme", "role": "client", "name": "deploy-bot" } ] }
 * `name` (optional) says whose token it is: the audit trail records it with each change.
 * Roles: `admin` (everything, including cluster operations), `client` (jobs and executions),
 * `worker` (the worker protocol, and reading executions).
 */
import fs from "node:fs";
import { CronwheelError } from "../core/errors.js";
import type { Actor } from "../core/records.js";

export type Role = "admin" | "client" | "worker";

export interface Principal {
  tenant: string;
  role: Role;
  /** The token's name from the token file, if it has one. */
  name?: string;
}

const ROLES: readonly Role[] = ["admin", "client", "worker"];
const OPEN: Principal = Object.freeze({ tenant: "default", role: "admin" }) as Principal;

export class Auth {
  private constructor(private readonly tokens: Map<string, Principal> | null) {}

  static open(): Auth {
    return new Auth(null);
  }

  static fromFile(file: string): Auth {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as { tokens?: unknown };
    if (!Array.isArray(parsed.tokens)) throw new Error(`${file}: expected { "tokens": [ … ] }`);
    const tokens = new Map<string, Principal>();
    for (const [i, t] of (parsed.tokens as Array<Record<string, unknown>>).entries()) {
      const { token, tenant, role, name } = t;
      if (typeof token !== "string" || token.length < 8) throw new Error(`${file}: tokens[${i}].token must be a string of 8+ characters`);
      if (typeof tenant !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(tenant)) throw new Error(`${file}: tokens[${i}].tenant is not a valid tenant name`);
      if (!ROLES.includes(role as Role)) throw new Error(`${file}: tokens[${i}].role must be one of ${ROLES.join(", ")}`);
      if (name !== undefined && (typeof name !== "string" || !/^[A-Za-z0-9._@-]{1,64}$/.test(name))) throw new Error(`${file}: tokens[${i}].name must be 1-64 of A-Z a-z 0-9 . _ @ -`);
      tokens.set(token, { tenant, role: role as Role, ...(name !== undefined && { name }) });
    }
    return new Auth(tokens);
  }

  get enabled(): boolean {
    return this.tokens !== null;
  }

  /** The token a node presents to its peers: the first admin token (null when auth is off). */
  peerToken(): string | null {
    if (this.tokens === null) return null;
    for (const [token, p] of this.tokens) if (p.role === "admin") return token;
    throw new Error("cluster mode with auth needs an admin token in the token file: nodes use it with each other");
  }

  /** Whether an Authorization header may act as a peer node (an admin token). */
  authorizesPeer(authorization: string): boolean {
    try {
      return this.authenticate(authorization).role === "admin";
    } catch {
      return false;
    }
  }

  /** Who sends a request with this Authorization header; throws 401 when unknown. */
  authenticate(authorization: string): Principal {
    if (this.tokens === null) return OPEN;
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match) throw new CronwheelError("unauthenticated", "missing bearer token");
    const principal = this.tokens.get(match[1]!);
    if (!principal) throw new CronwheelError("unauthenticated", "unknown token");
    return principal;
  }
}

/** The audit trail's principal for a request (the tenant goes with the record itself). */
export function actorOf(p: Principal): Actor {
  return p.name === undefined ? { role: p.role } : { role: p.role, name: p.name };
}

/** Throws 403 unless the principal's role is one of `roles`. */
export function requireRole(p: Principal, ...roles: Role[]): void {
  if (!roles.includes(p.role)) {
    throw new CronwheelError("permission_denied", `role '${p.role}' may not do this`, { role: p.role, allowed: roles });
  }
}
