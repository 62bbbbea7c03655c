// The rpcws reference client lands here.
export {};
