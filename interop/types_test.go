package interop_test

import (
	"testing"
	"time"
)

// The client's type declarations under tsc --strict, over a file that uses every
// export and option: once in a browser project (DOM lib, no Node types) and once in a
// Node-only project (--types node, no DOM lib) that passes the ws package as the
// WebSocket constructor. typescript is a pinned devDependency of interop/js.
func TestTypeScript(t *testing.T) {
	t.Parallel()
	for _, project := range []string{"dom", "node"} {
		t.Run(project, func(t *testing.T) {
			t.Parallel()
			needNodePackage(t, "typescript")
			runNode(t, 2*time.Minute, nil, "node_modules/typescript/bin/tsc", "-p", "test/types/tsconfig."+project+".json")
		})
	}
}
