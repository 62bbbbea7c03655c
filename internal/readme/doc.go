// Package readme holds no code of its own. Its tests hold the Go blocks of
// the repository's README.md, of the guides in docs/ and of the package docs
// of codec and rpcws to the code: every block is mirrored, text for text,
// in a function of this package's tests, which compile it, and those that
// serve or call run it against the reference server (interop/refserver) or
// a handler of their own; or it is a whole program of a subdirectory
// (server, client, shutdown), which the tests build and run as a reader
// would. A block edited without its mirror, or a mirror without its block,
// fails TestREADMEBlocks or TestPackageDocBlocks; TestLinks holds the
// relative links of those files to files and headings that exist.
package readme
