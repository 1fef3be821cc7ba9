package envflag

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// ServePprof serves Go's profiler (net/http/pprof) on addr in the
// background, for --pprof-listen; empty addr does nothing. Bind it to
// loopback: it is for operators, not for the lab network.
func ServePprof(addr string, logger *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		logger.Info("profiler listening", "addr", addr)
		if err := http.ListenAndServe(addr, mux); err != nil {
			logger.Error("profiler stopped", "err", err)
		}
	}()
}
