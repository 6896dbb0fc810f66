// Command ferretdb-standin runs FerretDB v1 (SQLite backend) as a local
// MongoDB-wire stand-in for tmpmail's tests and `tmpmail up --store mongodb`.
//
// It exists because `go install .../cmd/ferretdb@v1.24.2` panics at start
// (its version check only passes when the main module is FerretDB's own);
// embedding the library from a module of ours starts cleanly. Telemetry is
// disabled by the embedded constructor.
//
//	ferretdb-standin -listen 127.0.0.1:27017 -data /path/to/existing/dir
//
// It stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	data := flag.String("data", "", "directory for the SQLite files (created if missing)")
	flag.Parse()

	if *data == "" {
		fmt.Fprintln(os.Stderr, "ferretdb-standin: -data is required")
		os.Exit(2)
	}
	dir, err := filepath.Abs(*data)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-standin: data directory: %v\n", err)
		os.Exit(1)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-standin: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "ferretdb-standin: listening on %s, data in %s\n", *listen, dir)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ferretdb-standin: %v\n", err)
		os.Exit(1)
	}
}
