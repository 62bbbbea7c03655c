// A browser cannot set headers on a WebSocket, so a token travels as a subprotocol.
// This check runs against the token-guarded endpoint that the Go tests in interop/ set
// up beside the reference server: it accepts subprotocol "rpcws" and a
// "token.<secret>" naming a user, and its whoami.get returns that user.

/**
 * @param {{url: string, assert: any, connect: typeof import('../rpcws.js').connect}} t
 */
export async function checkToken({ url, assert, connect }) {
  const client = await connect(url, { protocols: ['rpcws', 'token.s3cret'] });
  try {
    assert.equal(client.socket.protocol, 'rpcws', 'the server picks the rpcws subprotocol');
    assert.equal(await client.request('whoami.get'), 'alice');
  } finally {
    await client.close();
  }
  await assert.rejects(connect(url, { protocols: ['rpcws', 'token.wrong'] }), { code: 'Disconnected' });
  await assert.rejects(connect(url), { code: 'Disconnected' });
}
