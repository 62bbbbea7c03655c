// Package js embeds the JavaScript client of rpcws, rpcws.js and its type
// declarations rpcws.d.ts, with the demo page served beside them, so that a
// Go server can hand the client to its pages without copying a file or
// running npm: serve [Files] (see the example), and a page imports
// "/rpcws.js" as an ES module.
//
// Its import path is github.com/rpcws/rpcws/interop/js.
package js

import "embed"

// Files holds the client module (rpcws.js), its type declarations
// (rpcws.d.ts) and the demo page (index.html, demo.js, demo.css), at the
// root of the file system.
//
//go:embed rpcws.js rpcws.d.ts index.html demo.js demo.css
var Files embed.FS
