//go:build integration

package integration

import (
	"os"
	"testing"

	"github.com/dvrflow/dvrflow/db/pgtest"
)

// pg is the private PostgreSQL of the integration tests that need one.
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
