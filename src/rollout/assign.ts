import { createHash } from 'node:crypto';

/**
 * Where a conversation falls in [0, 1): a hash of its id, so every turn of a conversation, on
 * every replica, goes to the same version, and a share of 0.1 is the first tenth of the range.
 */
export function conversationPoint(conversationId: string): number {
  return createHash('sha256').update(conversationId).digest().readUInt32BE(0) / 0x1_0000_0000;
}

/** Whether a conversation is served by the challenger at this traffic share. */
export function servedByChallenger(conversationId: string, share: number): boolean {
  return conversationPoint(conversationId) < share;
}
