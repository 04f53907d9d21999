package faults

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy is a TCP proxy on loopback between the controller and the API
// server (TLS passes through untouched) that hurts the connections it
// carries while enabled: added latency on every chunk, connections reset
// in the middle of a stream (client-go sends every request of a process
// over one HTTP/2 connection: a reset fails all of them and every watch),
// stalls where nothing moves for seconds, and outages where every
// connection is cut and new ones are refused, as during an API server
// restart. Faults are drawn from a seeded source (their timing also
// depends on the scheduler: a seed replays the draws, not the run).
type faultProxy struct {
	ln     net.Listener
	target string
	// enabled turns the faults on; off, the proxy only forwards.
	enabled atomic.Bool
	// refusing is set during an outage.
	refusing atomic.Bool
	stop     chan struct{}

	mu    sync.Mutex
	rnd   *rand.Rand
	conns map[net.Conn]bool
	// stallUntil holds data back from every connection until then.
	stallUntil time.Time
	// counts of what was done, for the test's log.
	resets, stalls, outages int
}

const (
	// maxLatency is the most added to a chunk of data (one read, up to
	// 32 KiB).
	maxLatency = 20 * time.Millisecond
	// Every 1 to 4 s, while enabled, the proxy resets one connection
	// (half the time) or stalls every connection for stallFor (a third).
	stallFor = 2 * time.Second
)

func newFaultProxy(target string, seed uint64) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{ln: ln, target: target, rnd: rand.New(rand.NewPCG(seed, 1)), conns: map[net.Conn]bool{}, stop: make(chan struct{})}
	go p.serve()
	go p.chaos()
	return p, nil
}

// chaos resets and stalls connections at random while the proxy is
// enabled.
func (p *faultProxy) chaos() {
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(time.Second + time.Duration(p.float()*float64(3*time.Second))):
		}
		if !p.enabled.Load() {
			continue
		}
		switch r := p.float(); {
		case r < 0.5:
			p.resetOne()
		case r < 0.83:
			p.mu.Lock()
			p.stallUntil = time.Now().Add(stallFor)
			p.stalls++
			p.mu.Unlock()
		}
	}
}

// resetOne resets one connection, drawn at random.
func (p *faultProxy) resetOne() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) == 0 {
		return
	}
	i := p.rnd.IntN(len(p.conns))
	for c := range p.conns {
		if i == 0 {
			reset(c)
			p.resets++
			return
		}
		i--
	}
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) close() {
	close(p.stop)
	_ = p.ln.Close()
	p.cutAll()
}

// float draws from the seeded source.
func (p *faultProxy) float() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rnd.Float64()
}

func (p *faultProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing.Load() {
			_ = client.Close()
			continue
		}
		go p.forward(client)
	}
}

func (p *faultProxy) forward(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.track(client, server)
	done := make(chan struct{}, 2)
	go func() { p.copy(server, client); done <- struct{}{} }()
	go func() { p.copy(client, server); done <- struct{}{} }()
	<-done
	p.untrack(client, server)
	reset(client)
	reset(server)
	<-done
}

// copy forwards src to dst a chunk at a time, with the faults.
func (p *faultProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.enabled.Load() {
				p.mu.Lock()
				stall := time.Until(p.stallUntil)
				p.mu.Unlock()
				time.Sleep(max(stall, 0) + time.Duration(p.float()*float64(maxLatency)))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// outage cuts every connection and refuses new ones for d.
func (p *faultProxy) outage(d time.Duration) {
	p.count(&p.outages)
	p.refusing.Store(true)
	p.cutAll()
	time.Sleep(d)
	p.refusing.Store(false)
}

func (p *faultProxy) count(n *int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	*n++
}

func (p *faultProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = true
	}
}

func (p *faultProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *faultProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

// stats says what the proxy did.
func (p *faultProxy) stats() (resets, stalls, outages int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets, p.stalls, p.outages
}

// reset closes c with a TCP RST rather than a FIN, as a dying peer or a
// middlebox would.
func reset(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = c.Close()
}
