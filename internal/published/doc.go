// Package published holds no code of its own. Its test publishes the
// repository's modules, as they stand in the working tree, to a module proxy
// in a temporary directory (file://, the layout of GOPROXY), and installs
// them from there into a module outside the repository with go get, as a
// user would once they are tagged: it fails when a nested module requires a
// version of another that is not published with it, or counts on a replace
// that Go ignores in a dependency.
package published
