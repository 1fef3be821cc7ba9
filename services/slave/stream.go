package slave

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/taskstream"
)

// maxStreamGroup bounds the requests evaluated as one group (one slot, one
// write of answers).
const maxStreamGroup = 256

// maxStreamExpr bounds one expression on the stream; calc refuses anything
// over its own limit with an evaluation error, as /compute does.
const maxStreamExpr = 64 << 10

// streams are the open task streams, so a stopping slave can end them.
type streams struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (st *streams) add(c net.Conn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.conns == nil {
		return false // closed
	}
	st.conns[c] = struct{}{}
	st.wg.Add(1)
	return true
}

// open counts the open streams.
func (st *streams) open() float64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return float64(len(st.conns))
}

func (st *streams) remove(c net.Conn) {
	st.mu.Lock()
	delete(st.conns, c)
	st.mu.Unlock()
	st.wg.Done()
}

// stop makes every stream stop reading: each finishes the groups it has
// read, writes their answers and closes. Requests the master sent after
// that are answered by no one: the master sees the connection close and
// runs them elsewhere. stop waits for the streams to close, up to ctx.
func (st *streams) stop(ctx context.Context) {
	st.mu.Lock()
	for c := range st.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	st.conns = nil
	st.mu.Unlock()
	done := make(chan struct{})
	go func() { st.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// computeStream upgrades GET /compute/stream to the master's task stream
// (package taskstream) and serves it until the master or the slave closes
// it.
func (s *Slave) computeStream(c *echo.Context) error {
	req := c.Request()
	if !strings.EqualFold(req.Header.Get("Upgrade"), taskstream.Protocol) || !headerHas(req.Header, "Connection", "upgrade") {
		e := httpserve.Errorf(http.StatusUpgradeRequired, "GET %s is the master's task stream: send Connection: Upgrade and Upgrade: %s (clients use POST /compute or /compute/batch)", taskstream.Path, taskstream.Protocol)
		c.Response().Header().Set("Upgrade", taskstream.Protocol)
		return e
	}
	if s.draining.Load() {
		return httpserve.Errorf(http.StatusServiceUnavailable, "slave is shutting down")
	}
	conn, rw, err := http.NewResponseController(c.Response()).Hijack()
	if err != nil {
		return httpserve.Errorf(http.StatusInternalServerError, "cannot take over the connection: %v", err)
	}
	defer conn.Close()
	if !s.streams.add(conn) {
		return nil // the slave stopped meanwhile: closing tells the master
	}
	defer s.streams.remove(conn)
	_ = conn.SetDeadline(time.Time{}) // the server's body deadline does not apply
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + taskstream.Protocol + "\r\n\r\n")
	if err := rw.Flush(); err != nil {
		return nil
	}
	err = s.serveStream(conn, rw.Reader)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errStopping) {
		s.log.Warn("task stream closed", "remote", conn.RemoteAddr().String(), "err", err)
	}
	closeGracefully(conn, rw.Reader)
	return nil
}

// closeGracefully ends the stream so the answers already written arrive:
// closing a socket with unread requests in it would reset the connection,
// and a reset can discard answers the master has not read yet. So the
// slave says it is done writing, then reads (and drops) what the master
// still sends until the master closes too, for at most a second.
func closeGracefully(conn net.Conn, r *bufio.Reader) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, r)
	}
}

var errStopping = errors.New("slave stopping")

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// serveStream reads groups of requests (a request and every one already
// buffered behind it, up to maxStreamGroup), evaluates each group in one
// of the slave's slots and writes its answers in one write. A group of a
// few short expressions (inlineGroupBytes) is evaluated on the reader
// itself; larger groups run concurrently, up to the slave's capacity. The
// reader waits for a slot, so a busy slave stops reading and TCP holds the
// master back.
func (s *Slave) serveStream(conn net.Conn, r *bufio.Reader) error {
	var (
		wmu    sync.Mutex
		groups sync.WaitGroup
	)
	defer groups.Wait()
	rr := &taskstream.RequestReader{R: r, MaxLen: maxStreamExpr}
	for {
		first, err := rr.Read()
		if err != nil {
			return stopping(err)
		}
		group := []taskstream.Request{first}
		var stop error // after this group: a frame cut by the stop, or a bad one
		for len(group) < maxStreamGroup && r.Buffered() > 0 {
			req, err := rr.Read()
			if err != nil {
				stop = stopping(err)
				break
			}
			group = append(group, req)
		}
		s.streamGroups.Inc()
		s.streamExprs.Add(float64(len(group)))
		// A group read is answered, even when the slave started to stop
		// meanwhile (streams.stop then ends the reading, not the answers).
		release, _ := s.slot(context.Background()) // no context to end: it waits
		if groupBytes(group) <= inlineGroupBytes {
			// A few short expressions take microseconds: evaluated here,
			// they cost no goroutine and no wake-up, and the frames that
			// arrive meanwhile make the next group.
			s.answerGroup(conn, &wmu, group, release)
		} else {
			groups.Add(1)
			go func() {
				defer groups.Done()
				s.answerGroup(conn, &wmu, group, release)
			}()
		}
		if stop != nil {
			return stop // the whole frames before it are answered
		}
	}
}

// answerGroup evaluates a group in the slot release gives back, and writes
// its answers in one write (wmu keeps groups' writes whole).
func (s *Slave) answerGroup(conn net.Conn, wmu *sync.Mutex, group []taskstream.Request, release func()) {
	out := s.evalGroup(group)
	release()
	wmu.Lock()
	_, err := conn.Write(out)
	wmu.Unlock()
	if err != nil {
		_ = conn.Close() // the reader stops too; the master retries elsewhere
	}
}

// inlineGroupBytes is the most expression bytes a group may hold to be
// evaluated on the stream's reader: a few short expressions, microseconds of
// work, so the reader is not held back from the next frames for long.
const inlineGroupBytes = 256

// groupBytes counts a group's expression bytes.
func groupBytes(group []taskstream.Request) int {
	n := 0
	for _, r := range group {
		n += len(r.Expr)
	}
	return n
}

// stopping is errStopping for a read that the stop's deadline ended, and
// err otherwise.
func stopping(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errStopping
	}
	return err
}

// evalGroup evaluates a group and returns its answer frames.
func (s *Slave) evalGroup(group []taskstream.Request) []byte {
	out := make([]byte, 0, 16*len(group))
	bad := 0
	debug := s.log.Enabled(context.Background(), slog.LevelDebug)
	for _, req := range group {
		v, err := calc.Eval(req.Expr, calc.DefaultLimits)
		if debug {
			// The master's request id: one task is followed in both logs.
			s.log.DebugContext(httpserve.WithRequestID(context.Background(), req.RequestID),
				"evaluated on the task stream", "bytes", len(req.Expr), "error", err)
		}
		if err != nil {
			out = taskstream.AppendError(out, req.ID, err.Error())
			bad++
			continue
		}
		out = taskstream.AppendResult(out, req.ID, v)
	}
	s.done.Add(uint64(len(group)))
	s.evalOK.Add(float64(len(group) - bad))
	s.evalErr.Add(float64(bad))
	return out
}
