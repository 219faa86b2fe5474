package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
)

// A proxy in front of an app, and a deploy: New makes the proxy, SetTarget
// points it at the app's container with its worker count, Serve serves
// clients until its context ends, and a second SetTarget switches to the
// next version while WaitDrained says when the old one may be stopped.
func ExampleProxy() {
	// Two versions of an app, as two containers would be.
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from v1")
	}))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from v2")
	}))
	defer v2.Close()

	p, err := proxy.New(proxy.Config{}) // every zero field takes its Default*
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// v1 serves 4 requests at once (gunicorn -w 4): the rest wait in the
	// queue, for up to DefaultQueueTimeout, then get a 503.
	if _, _, err := p.SetTarget("v1", v1.Listener.Addr().String(), 4); err != nil {
		log.Fatal(err)
	}

	ln, err := proxy.Listen("127.0.0.1:0", proxy.DefaultMaxConnections)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln, proxy.ServerConfig{}) }()
	url := "http://" + ln.Addr().String() + "/"
	fmt.Println(get(url))

	// Deploy v2: new requests go to it at once, requests already admitted
	// finish on v1, and waiting ones move over without losing their place.
	_, old, err := p.SetTarget("v2", v2.Listener.Addr().String(), 4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(get(url))
	// Once v1 has nothing in flight, its container may be stopped.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := old.WaitDrained(dctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("v1 drained")

	stop() // Serve stops accepting, lets requests in flight finish, returns
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello from v1
	// hello from v2
	// v1 drained
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
