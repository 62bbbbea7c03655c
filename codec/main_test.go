package codec_test

import (
	"testing"

	"github.com/rpcws/rpcws/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
