package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rpcws/rpcws/rpcws"
)

// Session recovery with the JavaScript client (PROTOCOL.md, "Sessions and recovery"):
// its unit tests against a fake socket, and, end to end in Node, Chromium and Firefox,
// a client in a topic whose connection is cut while events are published, against a
// Go server that keeps history. test/recovery-check.mjs is the check; this file is
// its server.

// The client's recovery, unit by unit, against a fake socket.
func TestNodeClientRecovery(t *testing.T) {
	t.Parallel()
	nodeTest(t, time.Minute, nil, "test/recovery.test.mjs")
}

// In Node: every event exactly once, in order, across a cut and across the restart
// of the replica the client is on; and past the history, one resync and the live
// events.
func TestNodeRecovery(t *testing.T) {
	t.Parallel()
	s := startRecovery(t, false, nil)
	out := nodeTest(t, 2*time.Minute, []string{
		"RPCWS_RECOVERY_URL=" + s.wsURL,
		"RPCWS_RECOVERY_CONTROL=" + s.hs.URL + "/run",
	}, "test/recovery-e2e.test.mjs")
	for _, name := range []string{"recovery: every event once, in order", "recovery: past the history", "recovery: across a replica restart"} {
		if !strings.Contains(out, "✔ "+name) {
			t.Errorf("%q did not pass in Node", name)
		}
	}
}

// In Chromium and Firefox: the same checks, in a page (test/recovery.html) served
// beside the replicas, its WebSocket through the proxy. Each browser gets servers
// of its own: a replica restarts once.
func TestBrowserRecovery(t *testing.T) {
	t.Parallel()
	eachBrowser(t, func(t *testing.T, open openPage) {
		reports := make(chan []byte, 1)
		s := startRecovery(t, true, reports)
		host := fmt.Sprintf("%s:%d", pageHost, s.hs.Listener.Addr().(*net.TCPAddr).Port)
		page := fmt.Sprintf("http://%s/test/recovery.html?url=%s", host, url.QueryEscape(s.wsURL))
		checkRecoveryReport(t, open(t, page, reports, 2*time.Minute))
	})
}

// checkRecoveryReport checks what test/recovery.html reported: every check passed.
func checkRecoveryReport(t *testing.T, body []byte) {
	t.Helper()
	var rep struct {
		Fatal     string
		UserAgent string
		Results   []checkResult
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("the page's report: %v\n%s", err, body)
	}
	if rep.Fatal != "" {
		t.Fatalf("the page failed: %s", rep.Fatal)
	}
	t.Logf("browser: %s", rep.UserAgent)
	if len(rep.Results) != 3 {
		t.Errorf("the page reported %d checks, want 3: %+v", len(rep.Results), rep.Results)
	}
	for _, r := range rep.Results {
		if r.Status != "pass" {
			t.Errorf("%s: %s: %s", r.Name, r.Status, r.Reason)
		} else {
			t.Logf("%s: pass in %.0f ms", r.Name, r.Ms)
		}
	}
}

// recoveryHistory is the history the recovery server keeps per topic: more than an
// outage of recovery-e2e's first run misses, fewer than its second.
const recoveryHistory = 50

// recoveryServer is two replicas of an rpcws endpoint that keeps history, with the
// service topic.join, on one MemoryBus; a proxy that leads to the first, and that
// /run cuts in the middle of a run of events, or switches to the second when /run
// shuts the first down.
type recoveryServer struct {
	replicas [2]*recoveryReplica
	proxy    *cutProxy
	hs       *httptest.Server // /run, /report and the files of interop/js
	wsURL    string           // /rpc through the proxy

	mu        sync.Mutex // guards restarted
	restarted bool       // the first replica was shut down
}

// recoveryReplica is one replica of the recovery server.
type recoveryReplica struct {
	h  *rpcws.Handler
	hs *httptest.Server
}

// startRecovery starts a recovery server for the length of the test. With pages,
// the replicas let in WebSocket connections from the pages it serves (the proxy
// is another origin); reports, if not nil, receives the first report POSTed to
// /report.
func startRecovery(t *testing.T, pages bool, reports chan<- []byte) *recoveryServer {
	t.Helper()
	s := &recoveryServer{}
	// Everything is in place before the servers start serving: their goroutines
	// then see it all.
	mux := http.NewServeMux()
	s.hs = httptest.NewUnstartedServer(mux)
	t.Cleanup(s.hs.Close)
	mux.HandleFunc("POST /run", s.run)
	if reports != nil {
		mux.Handle("POST /report", reportHandler(reports))
	}
	mux.Handle("/", http.FileServerFS(os.DirFS(jsDir)))
	opts := rpcws.HandlerOptions{History: &rpcws.HistoryOptions{Size: recoveryHistory}}
	if pages {
		origin := fmt.Sprintf("%s:%d", pageHost, s.hs.Listener.Addr().(*net.TCPAddr).Port)
		opts.AcceptOptions = &websocket.AcceptOptions{OriginPatterns: []string{origin}}
	}
	var bus rpcws.MemoryBus
	for i := range s.replicas {
		s.replicas[i] = startRecoveryReplica(t, &bus, opts)
	}
	s.proxy = newCutProxy(t, s.replicas[0].hs.Listener.Addr().String())
	s.wsURL = "ws://" + s.proxy.addr() + "/rpc"
	s.hs.Start()
	return s
}

// startRecoveryReplica starts one replica on bus with opts, for the length of the test.
func startRecoveryReplica(t *testing.T, bus *rpcws.MemoryBus, opts rpcws.HandlerOptions) *recoveryReplica {
	t.Helper()
	srv := rpc.NewServer()
	if err := srv.RegisterName("Topic", recoveryTopics{}); err != nil {
		t.Fatal(err)
	}
	opts.Broker = bus.NewBroker()
	h := rpcws.NewHandler(srv, &opts)
	mux := http.NewServeMux()
	mux.Handle("/rpc", h)
	return &recoveryReplica{h: h, hs: serveRPC(t, mux, h.Shutdown)}
}

// run publishes count events {"n": 1..count} to topic, 5 ms apart, through the
// second replica, which never goes down. After event cut it cuts every connection
// through the proxy (mode "cut") or shuts the first replica down and switches the
// proxy to the second (mode "restart": once per server), and refuses new
// connections; after event resume it lets them through again and waits until a new
// connection is in the topic (the client recovered its session) before it publishes
// the rest. It answers once it has published the last, or with the error that
// stopped it.
func (s *recoveryServer) run(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic, mode := q.Get("topic"), q.Get("mode")
	count, err1 := strconv.Atoi(q.Get("count"))
	cut, err2 := strconv.Atoi(q.Get("cut"))
	resume, err3 := strconv.Atoi(q.Get("resume"))
	if err := errors.Join(err1, err2, err3); err != nil || !(1 <= cut && cut < resume && resume < count && count <= 1000) ||
		(mode != "cut" && mode != "restart") {
		http.Error(w, fmt.Sprintf("want mode cut or restart, and 1 ≤ cut < resume < count ≤ 1000 (%v)", err), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var before []string // the connections in the topic when it was cut
	for n := 1; n <= count; n++ {
		if err := s.replicas[1].h.Publish(ctx, rpcws.Topic(topic), "room.event", map[string]int{"n": n}); err != nil {
			http.Error(w, fmt.Sprintf("publish %d: %v", n, err), http.StatusInternalServerError)
			return
		}
		var err error
		switch n {
		case cut:
			before = s.members(topic)
			err = s.drop(ctx, mode)
		case resume:
			s.proxy.resume()
			err = s.awaitNewMember(ctx, topic, before, 10*time.Second)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			http.Error(w, ctx.Err().Error(), http.StatusInternalServerError)
			return
		}
	}
	io.WriteString(w, "published\n")
}

// drop takes the connections through the proxy down as mode says, and refuses new
// ones until the proxy resumes.
func (s *recoveryServer) drop(ctx context.Context, mode string) error {
	if mode == "cut" {
		s.proxy.cut()
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restarted {
		return errors.New("the first replica is already down: a restart runs once per server")
	}
	s.restarted = true
	s.proxy.switchTo(s.replicas[1].hs.Listener.Addr().String())
	// Its connections are closed with 1001, by the server: a deploy.
	return s.replicas[0].h.Shutdown(ctx)
}

// members returns the ids of the connections in topic, on either replica.
func (s *recoveryServer) members(topic string) []string {
	var ids []string
	for _, r := range s.replicas {
		for _, p := range r.h.Peers() {
			if slices.Contains(p.Topics(), topic) {
				ids = append(ids, p.ID())
			}
		}
	}
	return ids
}

// awaitNewMember waits until a connection not in before is in topic, looking every
// 5 ms (the handler tells of no membership as it happens), for at most limit.
func (s *recoveryServer) awaitNewMember(ctx context.Context, topic string, before []string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	look := time.NewTicker(5 * time.Millisecond)
	defer look.Stop()
	for {
		for _, id := range s.members(topic) {
			if !slices.Contains(before, id) {
				return nil
			}
		}
		select {
		case <-look.C:
		case <-ctx.Done():
			return fmt.Errorf("no connection recovered topic %q within %v: %w", topic, limit, ctx.Err())
		}
	}
}

// recoveryTopics is the recovery server's service: topic.join, and topic.mine,
// which tells the caller the topics it is in.
type recoveryTopics struct{}

// RecoveryTopicArgs names a topic; the connection is the caller.
type RecoveryTopicArgs struct {
	rpcws.Caller
	Topic string `json:"topic"`
}

// RecoveryTopicReply names the topic joined.
type RecoveryTopicReply struct {
	Topic string `json:"topic"`
}

// Join makes the calling connection a member of the topic.
func (recoveryTopics) Join(args *RecoveryTopicArgs, reply *RecoveryTopicReply) error {
	p := args.Peer()
	if err := p.Join(p.Context(), args.Topic); err != nil {
		return err
	}
	reply.Topic = args.Topic
	return nil
}

// RecoveryMineArgs carries the calling connection.
type RecoveryMineArgs struct{ rpcws.Caller }

// RecoveryMineReply lists the topics of a connection.
type RecoveryMineReply struct {
	Topics []string `json:"topics"`
}

// Mine returns the topics the calling connection is in.
func (recoveryTopics) Mine(args *RecoveryMineArgs, reply *RecoveryMineReply) error {
	reply.Topics = args.Peer().Topics()
	return nil
}

// cutProxy forwards TCP connections to a backend and cuts them all at once on
// demand, as a network that drops does: both ends see their connection end, with no
// close frame. While cut, it refuses new connections (closes them at once).
type cutProxy struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and the forwarding goroutines

	mu      sync.Mutex
	backend string                // the address connections are forwarded to
	conns   map[net.Conn]struct{} // both ends of every forwarded connection
	down    bool
}

// newCutProxy starts a proxy to backend on 127.0.0.1 for the length of the test.
func newCutProxy(t *testing.T, backend string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward connects c to the backend and copies both ways until either ends.
func (p *cutProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return
	}
	p.mu.Lock()
	backend := p.backend
	p.mu.Unlock()
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if !p.track(c, b) {
		return
	}
	defer p.untrack(c, b)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close() // ends the other direction too
		src.Close()
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
}

// track records the two ends of a connection, unless the proxy is cut meanwhile.
func (p *cutProxy) track(c, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *cutProxy) untrack(c, b net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	delete(p.conns, b)
}

// cut ends every connection through the proxy and refuses new ones until resume.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// switchTo refuses new connections, as cut does, and forwards those let through
// after resume to backend. The connections in place stay.
func (p *cutProxy) switchTo(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.backend = backend
}

// resume lets new connections through again.
func (p *cutProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// close stops the proxy and waits for its goroutines.
func (p *cutProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}
