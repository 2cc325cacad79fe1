/** Handshakes completed and refused (by reason) since start, for the metrics endpoint. */

/** Counts of this instance's handshakes. Reasons come from closed sets in the code, so the map stays small. */
export class HandshakeStats {
  /** Handshakes that produced a session. */
  completed = 0;
  /** Handshake messages refused, by reason (`auth`, `replay`, `busy`, `no_address`, ...). */
  readonly refused = new Map<string, number>();

  /** Count one refused handshake message. */
  refuse(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }
}
