package slaveclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/taskstream"
)

// errNoStream means the slave does not speak the task stream (an older
// slave, or one that refused the upgrade): the caller uses HTTP.
var errNoStream = errors.New("slave has no task stream")

// errBroken marks a call refused by a stream that had already broken.
var errBroken = errors.New("the task stream had broken")

// noStreamFor is how long a slave that refused the upgrade is sent HTTP
// calls before the client asks again (it may have been upgraded).
const noStreamFor = time.Minute

// streams holds the client's task streams, one per slave URL.
type streams struct {
	mu       sync.Mutex
	open     map[string]*stream
	dialing  map[string]chan struct{} // closed when the dial ends
	noStream map[string]time.Time     // refused the upgrade, until
}

// stream is one open task stream to a slave: many expressions in flight,
// answers matched by id, every frame ready written in one syscall.
type stream struct {
	rwc io.ReadWriteCloser

	mu   sync.Mutex
	next uint64
	// pending holds the calls in flight by their first id, ascending: a
	// call's expressions have consecutive ids, so an answer finds its call
	// by binary search, one entry per call rather than per expression
	// (a batch call carries thousands). Finished calls leave from the
	// front; the list is compacted when most of it is finished.
	pending []inflight
	live    int   // calls in pending still waiting for answers
	err     error // set once the stream broke; it takes no new calls
	// answers counts the answers read: a call that timed out while it
	// stayed the same learns that nothing came on the stream at all.
	answers uint64
	out     []byte
	writing bool // the writer has been kicked and not finished
	spare   []byte
	kick    chan struct{}
}

// inflight is a call in pending; c is nil once the call was forgotten.
type inflight struct {
	base uint64
	c    *call
}

// find returns the index in pending of the call id belongs to, or -1.
func (st *stream) find(id uint64) int {
	i := sort.Search(len(st.pending), func(i int) bool { return st.pending[i].base > id }) - 1
	if i < 0 || st.pending[i].c == nil || id-st.pending[i].base >= uint64(len(st.pending[i].c.items)) {
		return -1
	}
	return i
}

// retire notes that the call at pending[i] needs no more answers.
func (st *stream) retire(i int) {
	st.pending[i].c = nil
	st.live--
	n := 0
	for n < len(st.pending) && st.pending[n].c == nil {
		n++
	}
	st.pending = st.pending[n:]
	if len(st.pending) > 64 && len(st.pending) > 4*st.live {
		kept := st.pending[:0]
		for _, f := range st.pending {
			if f.c != nil {
				kept = append(kept, f)
			}
		}
		clear(st.pending[len(kept):])
		st.pending = kept
	}
}

// call is one group of expressions sent on a stream.
type call struct {
	items []api.BatchItem
	vals  []float64
	left  int
	err   error
	done  chan struct{}
	// items and vals of a one-expression call (every task), without
	// allocations of their own
	one    [1]api.BatchItem
	oneVal [1]float64
}

func newCall(n int) *call {
	cl := &call{left: n, done: make(chan struct{})}
	if n == 1 {
		cl.items, cl.vals = cl.one[:], cl.oneVal[:]
	} else {
		cl.items, cl.vals = make([]api.BatchItem, n), make([]float64, n)
	}
	return cl
}

// timers are the per-try timers of stream calls, reused: since Go 1.23 a
// stopped timer delivers nothing stale after Reset.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// computeStream evaluates exprs on tg's task stream. It returns errNoStream
// when the slave has none (the caller uses HTTP); other errors are marked
// for the dispatcher as the HTTP calls' are.
func (c *Client) computeStream(ctx context.Context, op string, tg dispatch.Target, exprs []string, reqID string) ([]api.BatchItem, error) {
	cl := newCall(len(exprs))
	var (
		st         *stream
		base, seen uint64
	)
	// A stream that broke since it was last used (the slave restarted)
	// is not the slave's fault now: the call goes on a new one.
	for try := 0; ; try++ {
		var err error
		if st, err = c.stream(ctx, op, tg); err != nil {
			return nil, err
		}
		base, seen, err = st.send(cl, exprs, reqID, c.cfg.MaxStreamBacklog)
		if err == nil {
			break
		}
		c.drop(tg.URL, st, errors.New("stream dropped"))
		if !errors.Is(err, errBroken) || try > 0 {
			return nil, wrap(&Error{Op: op, Slave: name(tg), Kind: KindTransport, Err: err})
		}
	}
	timer := timers.Get().(*time.Timer)
	timer.Reset(c.cfg.TaskTimeout)
	defer func() {
		timer.Stop()
		timers.Put(timer)
	}()
	select {
	case <-cl.done:
		if cl.err != nil {
			c.drop(tg.URL, st, errors.New("stream dropped"))
			kind := KindTransport
			if errors.Is(cl.err, taskstream.ErrProtocol) {
				kind = KindMalformed
			}
			return nil, wrap(&Error{Op: op, Slave: name(tg), Kind: kind, Err: cl.err})
		}
		return cl.items, nil
	case <-timer.C:
		why := fmt.Errorf("no answer on the task stream within %s", c.cfg.TaskTimeout)
		if st.forget(base, seen) {
			// Nothing at all came on the stream while this call waited: its
			// peer is gone (a killed VM answers nothing, not even a reset,
			// and a new one at its address knows nothing of the old
			// connection). Calls sent after on it would wait the same;
			// the next call dials again.
			why = fmt.Errorf("%w, nor any other answer: the stream was closed as dead", why)
			c.drop(tg.URL, st, why)
		}
		return nil, wrap(&Error{Op: op, Slave: name(tg), Kind: KindTimeout, Err: why})
	case <-ctx.Done():
		st.forget(base, seen)
		return nil, fmt.Errorf("slave %s %s: %w", name(tg), op, ctx.Err())
	}
}

// stream returns tg's open stream, opening one if needed; concurrent
// callers share one dial.
func (c *Client) stream(ctx context.Context, op string, tg dispatch.Target) (*stream, error) {
	s := &c.streams
	for {
		s.mu.Lock()
		if st := s.open[tg.URL]; st != nil {
			s.mu.Unlock()
			return st, nil
		}
		if until, ok := s.noStream[tg.URL]; ok && time.Now().Before(until) {
			s.mu.Unlock()
			return nil, errNoStream
		}
		if wait, ok := s.dialing[tg.URL]; ok {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("slave %s %s: %w", name(tg), op, ctx.Err())
			}
		}
		if s.dialing == nil {
			s.dialing, s.open, s.noStream = map[string]chan struct{}{}, map[string]*stream{}, map[string]time.Time{}
		}
		wait := make(chan struct{})
		s.dialing[tg.URL] = wait
		s.mu.Unlock()

		st, err := c.dialStream(ctx, op, tg)
		s.mu.Lock()
		delete(s.dialing, tg.URL)
		switch {
		case err == nil:
			s.open[tg.URL] = st
		case errors.Is(err, errNoStream):
			s.noStream[tg.URL] = time.Now().Add(noStreamFor)
		}
		s.mu.Unlock()
		close(wait)
		return st, err
	}
}

// drop forgets a broken stream (the next call dials again) and closes it:
// the calls still on it fail with err.
func (c *Client) drop(url string, st *stream, err error) {
	c.forget(url, st)
	st.close(err)
}

// forget removes st from the open streams, if it is still url's.
func (c *Client) forget(url string, st *stream) {
	c.streams.mu.Lock()
	if c.streams.open[url] == st {
		delete(c.streams.open, url)
	}
	c.streams.mu.Unlock()
}

// RetainStreams closes the open task streams whose slave URL keep rejects
// (the slave left the pool or is down); calls in flight on them fail as CloseStreams
// makes them.
func (c *Client) RetainStreams(keep func(url string) bool) {
	var gone []*stream
	c.streams.mu.Lock()
	for url, st := range c.streams.open {
		if !keep(url) {
			delete(c.streams.open, url)
			gone = append(gone, st)
		}
	}
	c.streams.mu.Unlock()
	for _, st := range gone {
		st.close(errors.New("the master closed the stream: the slave left the pool or is down"))
	}
}

// CloseStreams closes every open task stream (the master is stopping, or a
// slave was removed); calls in flight fail and run again elsewhere.
func (c *Client) CloseStreams() {
	c.streams.mu.Lock()
	open := c.streams.open
	c.streams.open = map[string]*stream{}
	c.streams.mu.Unlock()
	for _, st := range open {
		st.close(errors.New("the master closed the stream"))
	}
}

// dialStream opens a task stream: an HTTP/1.1 request upgraded to the
// stream protocol. A slave answering anything but 101 has no stream.
func (c *Client) dialStream(ctx context.Context, op string, tg dispatch.Target) (*stream, error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.TaskTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, tg.URL+taskstream.Path, nil)
	if err != nil {
		return nil, wrap(&Error{Op: op, Slave: name(tg), Kind: KindEncode, Err: err})
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", taskstream.Protocol)
	res, err := c.http.Do(req)
	if err != nil {
		_, err = c.transportFailure(ctx, dctx, op, tg, 0, err, c.cfg.TaskTimeout)
		return nil, err
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxComputeReply))
		res.Body.Close()
		return nil, errNoStream
	}
	rwc, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close()
		return nil, errNoStream
	}
	st := &stream{rwc: rwc, kick: make(chan struct{}, 1)}
	go func() {
		st.readLoop(bufio.NewReaderSize(rwc, 64<<10))
		c.forget(tg.URL, st) // broken: the next call opens a new one
	}()
	go st.writeLoop()
	return st, nil
}

// send registers cl's expressions under consecutive ids and queues their
// frames for the stream's writer, which writes everything queued in one
// write: under load, the frames of many tasks share a syscall.
func (st *stream) send(cl *call, exprs []string, reqID string, maxBacklog int) (base, answers uint64, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errBroken, st.err)
	}
	if len(st.out) > maxBacklog {
		return 0, 0, fmt.Errorf("the slave has not read %d bytes of requests queued on its task stream", len(st.out))
	}
	base = st.next
	st.next += uint64(len(exprs))
	st.pending = append(st.pending, inflight{base, cl})
	st.live++
	for i, e := range exprs {
		st.out = taskstream.AppendRequest(st.out, base+uint64(i), e, reqID)
	}
	if !st.writing {
		st.writing = true
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
	return base, st.answers, nil
}

// writeLoop writes the queued frames until the stream breaks.
func (st *stream) writeLoop() {
	for range st.kick {
		// Let the goroutines that are ready to run queue their frames
		// first: they go out in this write.
		runtime.Gosched()
		st.mu.Lock()
		for len(st.out) > 0 && st.err == nil {
			buf := st.out
			st.out = st.spare[:0]
			st.mu.Unlock()
			_, err := st.rwc.Write(buf)
			st.mu.Lock()
			st.spare = buf[:0]
			if err != nil {
				st.failLocked(err)
			}
		}
		st.writing = false
		stop := st.err != nil
		st.mu.Unlock()
		if stop {
			return
		}
	}
}

// forget drops the call whose ids start at base (it stopped waiting): a
// late answer for them is ignored. It reports whether the stream read no
// answer since the call was sent (answers was the count then) and has not
// broken: it went silent.
func (st *stream) forget(base, answers uint64) (silent bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if i := st.find(base); i >= 0 && st.pending[i].base == base {
		st.retire(i)
	}
	return st.answers == answers && st.err == nil
}

// readLoop matches answers to their calls until the stream breaks.
func (st *stream) readLoop(r *bufio.Reader) {
	for {
		a, err := taskstream.ReadAnswer(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the slave closed the task stream: %w", io.ErrUnexpectedEOF)
			}
			st.close(err)
			return
		}
		st.answer(a)
	}
}

// answer hands an answer to its call; an answer to an id not in flight
// (its call timed out and was forgotten, or it was answered) changes
// nothing.
func (st *stream) answer(a taskstream.Answer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.answers++
	i := st.find(a.ID)
	if i < 0 {
		return
	}
	c, k := st.pending[i].c, int(a.ID-st.pending[i].base)
	it := &c.items[k]
	if it.Error != "" || it.Result != nil {
		return
	}
	if a.Error != "" {
		it.Error = a.Error
	} else {
		c.vals[k] = a.Result
		it.Result = &c.vals[k]
	}
	if c.left--; c.left == 0 {
		close(c.done)
		st.retire(i)
	}
}

// close breaks the stream: every call waiting on it fails with err.
func (st *stream) close(err error) {
	st.mu.Lock()
	st.failLocked(err)
	st.mu.Unlock()
}

func (st *stream) failLocked(err error) {
	if st.err != nil {
		return
	}
	st.err = err
	_ = st.rwc.Close()
	select {
	case st.kick <- struct{}{}: // the writer sees err and stops
	default:
	}
	for _, f := range st.pending {
		if f.c != nil && f.c.err == nil && f.c.left > 0 {
			f.c.err, f.c.left = err, 0
			close(f.c.done)
		}
	}
	st.pending, st.live = nil, 0
}
