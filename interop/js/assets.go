// Package jsclient holds the JavaScript reference client of rpcws and the pages
// served beside it, embedded so that the reference server can serve them.
package jsclient

import "embed"

// Files holds the client module, its type declarations and the demo page.
//
//go:embed rpcws.js rpcws.d.ts index.html demo.js demo.css
var Files embed.FS
