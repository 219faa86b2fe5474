package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testservers"
)

// The status page of a running switchyard under load, in a real browser,
// shows the active container and the request counts the API reports.
func TestStatusPageUnderLoad(t *testing.T) {
	chromium, err := testservers.FindBinary("chromium")
	if err != nil {
		testservers.Missing(t, "chromium (apt-get install chromium)", err)
	}
	st := newStack(t)
	v1 := st.config(appConfig(st.image("v1"), ""))
	st.s3.Put(t, st.bucket, st.prefix+"/current.json", []byte(v1))
	st.start()
	m := st.waitHealthy(90 * time.Second)
	active := activeID(m)

	l := startLoad(st, 3)
	defer l.finish()
	time.Sleep(time.Second)
	before, _ := st.status()
	reqBefore := float64(before.Proxy.Requests)

	shot := filepath.Join(artifacts(t), "statuspage-e2e.png")
	url := "http://ops:" + st.token + "@" + st.apiAddr + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=6000", "--window-size=1280,900"}
	out, err := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	if !strings.Contains(dom, active[:12]) {
		t.Fatalf("the page does not show the active container %s", active[:12])
	}
	re := regexp.MustCompile(`data-field="requests"[^>]*>([0-9,]+)<`)
	mm := re.FindStringSubmatch(dom)
	if mm == nil {
		t.Fatalf("no requests figure in the page:\n%s", tail(dom, 3000))
	}
	shown, _ := strconv.ParseFloat(strings.ReplaceAll(mm[1], ",", ""), 64)
	after, _ := st.status()
	reqAfter := float64(after.Proxy.Requests)
	if shown < reqBefore || shown > reqAfter {
		t.Fatalf("the page shows %v requests; the API said %v before and %v after", shown, reqBefore, reqAfter)
	}
	if !strings.Contains(dom, `data-action="start"`) {
		t.Fatalf("the deployment history is not on the page")
	}
	if _, err := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+shot, url)...).CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot: %s (page shows %v requests, API %v..%v)", shot, shown, reqBefore, reqAfter)
}

func artifacts(t *testing.T) string {
	dir, _ := filepath.Abs("artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
