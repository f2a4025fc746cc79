// The kiosk's phone page. It shows the state the session pushes (server-sent events from
// /events) and sends the person's requests (POST /request). All text from the session is set
// with textContent: nothing it says is ever read as HTML.
"use strict";
(function () {
  const TOKEN = document.querySelector('meta[name="homestick-token"]').content;
  const TOKEN_HEADER = "X-Homestick-Token";
  const $ = id => document.getElementById(id);
  let view = null;
  let skew = 0; // the session's clock minus the page's, in seconds
  let langs = ["de", "en"];

  const both = () => langs.includes("de") === langs.includes("en");
  // One sentence in the customer's languages: German, English, or both.
  function say(de, en) {
    if (both()) return de + " / " + en;
    return langs.includes("en") ? en : de;
  }
  // A button's label: the first language large, the second small beneath.
  function label(el, de, en) {
    el.textContent = "";
    const first = langs.includes("de") || !langs.includes("en") ? de : en;
    el.append(first);
    if (both()) {
      const s = document.createElement("small");
      s.textContent = en;
      el.append(s);
    }
  }

  const SESSION = {
    network: ["Netzwerk wird gesucht …", "Looking for the network …"],
    vpn: ["Verbindung zum Büro wird aufgebaut …", "Connecting to the office …"],
    "vpn-up": ["Mit dem Büro verbunden. Telefon meldet sich an …", "Connected to the office. The phone is signing in …"],
    "sip-registered": ["Mit dem Büro verbunden. Telefon bereit.", "Connected to the office. Phone ready."],
    "vpn-down": ["Keine Verbindung zum Büro. Bitte Netzwerk prüfen.", "No connection to the office. Please check the network."],
    error: ["Störung. Bitte rufen Sie die IT-Hotline an.", "Something is wrong. Please call the IT hotline."],
  };

  function chip(el, cls, de, en) {
    el.className = cls;
    el.textContent = say(de, en);
  }

  function renderChips(v) {
    const s = v.session;
    const netUp = !["network", "error"].includes(s);
    chip($("chip-net"), netUp ? "ok" : s === "error" ? "bad" : "wait", "Netz", "Network");
    const vpn = s === "vpn-up" || s === "sip-registered" ? "ok" : s === "vpn-down" || s === "error" ? "bad" : "wait";
    chip($("chip-vpn"), vpn, "VPN", "VPN");
    const r = v.registration;
    const sip = r.state === "registered" && vpn === "ok" ? "ok" : r.state === "failed" ? "bad" : "wait";
    chip($("chip-sip"), sip, "Telefon", "Phone");
    $("chip-sip").title = r.state === "failed" ? r.reason : "";
  }

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" + two(m) : m) + ":" + two(s % 60);
  }
  function clock(t) {
    const d = new Date(t * 1000);
    return two(d.getHours()) + ":" + two(d.getMinutes());
  }
  const now = () => Date.now() / 1000 + skew;

  function renderCall(v) {
    const c = v.call;
    const incoming = !!c && c.state === "incoming";
    $("banner").hidden = !incoming;
    $("call").hidden = !c || incoming;
    if (incoming) {
      $("banner-text").textContent = say("Anruf von " + c.number, "Call from " + c.number);
      $("banner-name").textContent = c.name || "";
    }
    if (c && !incoming) {
      $("call-peer").textContent = (c.name ? c.name + " · " : "") + c.number;
      const st = {
        dialing: ["Wählt …", "Dialling …"],
        ringing: ["Klingelt …", "Ringing …"],
        connected: c.held ? ["Gehalten", "On hold"] : c.muted ? ["Verbunden, stumm", "Connected, muted"] : ["Verbunden", "Connected"],
      }[c.state];
      $("call-state").textContent = say(st[0], st[1]);
      $("mute").setAttribute("aria-pressed", String(c.muted));
      $("hold").setAttribute("aria-pressed", String(c.held));
      $("mute").disabled = $("hold").disabled = c.state !== "connected";
    }
    const connected = !!c && c.state === "connected";
    $("number").disabled = !!c;
    $("dial").disabled = v.registration.state !== "registered";
    $("dial").hidden = !!c; // no second call while one is on
    label($("number-label"), connected ? "Tastenfeld (Töne senden)" : "Nummer", connected ? "Keypad (send tones)" : "Number");
    if (connected) $("number").value = c.dtmf;
    tick();
  }

  function tick() {
    const c = view && view.call;
    $("call-time").textContent = c && c.connected ? duration(now() - c.connected) : "";
  }

  function renderList(v) {
    label($("list-title"), "Anrufe dieser Sitzung", "Calls of this session");
    const ol = $("calls");
    ol.textContent = "";
    if (!v.history.length) {
      const li = document.createElement("li");
      li.textContent = say("Noch keine Anrufe.", "No calls yet.");
      ol.append(li);
    }
    for (const r of v.history) {
      const li = document.createElement("li");
      const missed = !r.outgoing && !r.answered;
      li.className = missed ? "missed" : "";
      const dir = r.outgoing ? say("an", "to") : missed ? say("verpasst", "missed") : say("von", "from");
      const who = (r.name ? r.name + " " : "") + r.number;
      li.textContent = clock(r.at) + "  " + (r.outgoing ? "↗ " : "↙ ") + dir + " " + who + (r.answered ? "  " + duration(r.seconds) : "");
      ol.append(li);
    }
  }

  function render(v) {
    view = v;
    langs = v.languages && v.languages.length ? v.languages : ["de", "en"];
    document.documentElement.lang = langs.includes("de") || !langs.includes("en") ? "de" : "en";
    $("customer").textContent = v.customer;
    $("own").textContent = v.own_number ? say("Ihre Nummer: " + v.own_number, "Your number: " + v.own_number) : "";
    renderChips(v);
    renderCall(v);
    renderList(v);
    renderSound(v.sound);
    // The tunnel is up and the phone registered: ready (the session's step may lag behind).
    const step = v.session === "vpn-up" && v.registration.state === "registered" ? "sip-registered" : v.session;
    const st = SESSION[step] || SESSION.error;
    $("status-text").textContent = v.message ? say(v.message[0], v.message[1]) : say(st[0], st[1]);
    $("secure-boot").hidden = !v.secure_boot_off;
    $("secure-boot").textContent = v.secure_boot_off
      ? say("Secure Boot ist aus: dieser PC schützt den Start nicht. Bitte rufen Sie die IT-Hotline an.",
            "Secure Boot is off: this PC does not protect the start. Please call the IT hotline.")
      : "";
    showNotice(v.notice);
    $("hotline").textContent = v.hotline ? "IT-Hotline: " + v.hotline : "";
  }

  // The PC's sound cards (none before the session read them): lists rebuilt only when they
  // change, so that an open list is not closed under the pointer; the volume slider is left
  // alone while it has the focus.
  function renderSound(s) {
    $("sound").hidden = !s;
    if (!s) return;
    label($("sound-title"), "Ton", "Sound");
    label($("output-label"), "Lautsprecher", "Speaker");
    label($("input-label"), "Mikrofon", "Microphone");
    label($("volume-label"), "Lautstärke", "Volume");
    fill($("output"), s.outputs, s.output);
    fill($("input"), s.inputs, s.input);
    // No volume control on the card in use (or no amixer): no slider.
    $("volume").parentElement.hidden = s.volume === null;
    if (document.activeElement !== $("volume") && s.volume !== null) $("volume").value = s.volume;
  }

  function fill(select, devices, chosen) {
    const key = JSON.stringify(devices);
    if (select.dataset.key !== key) {
      select.textContent = "";
      for (const d of devices) {
        const o = document.createElement("option");
        o.value = String(d.id);
        o.dataset.name = d.name;
        o.textContent = d.label + (d.usb ? " (USB)" : "");
        select.append(o);
      }
      select.dataset.key = key;
    }
    for (const o of select.options) o.selected = o.dataset.name === chosen;
  }

  function showNotice(n) {
    $("notice").hidden = !n;
    $("notice").textContent = n ? say(n[0], n[1]) : "";
  }

  async function ask(body) {
    try {
      const r = await fetch("/request", {
        method: "POST",
        headers: { "Content-Type": "application/json", [TOKEN_HEADER]: TOKEN },
        body: JSON.stringify(body),
      });
      if (r.status === 409) {
        const why = await r.json();
        showNotice([why.de, why.en]);
      } else if (!r.ok) {
        showNotice(["Das Telefon antwortet nicht (" + r.status + ").", "The phone does not answer (" + r.status + ")."]);
      }
    } catch (e) {
      showNotice(["Das Telefon antwortet nicht.", "The phone does not answer."]);
    }
  }

  const call = () => view && view.call;
  const state = () => (call() ? call().state : "idle");
  function dial() {
    const n = $("number").value.trim();
    if (n) ask({ do: "dial", number: n });
  }
  function key(k) {
    if (state() === "connected") {
      ask({ do: "dtmf", digit: k });
    } else if (!call()) {
      $("number").value = ($("number").value + k).slice(0, 32);
    }
  }
  function primary() {
    if (state() === "incoming") ask({ do: "answer" });
    else if (!call()) dial();
  }
  function stop() {
    if (state() === "incoming") ask({ do: "reject" });
    else if (call()) ask({ do: "hangup" });
    else $("number").value = "";
  }

  function buildPad() {
    for (const k of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]) {
      const b = document.createElement("button");
      b.textContent = k;
      b.dataset.key = k;
      b.addEventListener("click", () => key(k));
      $("pad").append(b);
    }
    $("back").addEventListener("click", () => ($("number").value = $("number").value.slice(0, -1)));
    $("dial").addEventListener("click", dial);
    $("answer").addEventListener("click", () => ask({ do: "answer" }));
    $("reject").addEventListener("click", () => ask({ do: "reject" }));
    $("hangup").addEventListener("click", () => ask({ do: "hangup" }));
    $("mute").addEventListener("click", () => call() && ask({ do: "mute", on: !call().muted }));
    $("hold").addEventListener("click", () => call() && ask({ do: "hold", on: !call().held }));
    // Only what a phone number holds: letters typed by mistake do not appear.
    $("number").addEventListener("input", () => {
      const n = $("number");
      const clean = n.value.replace(/[^0-9*#+]/g, "").slice(0, 32);
      if (clean !== n.value) n.value = clean;
    });
    $("number").addEventListener("paste", ev => ev.preventDefault());
    $("output").addEventListener("change", ev => ask({ do: "output", id: Number(ev.target.value) }));
    $("input").addEventListener("change", ev => ask({ do: "input", id: Number(ev.target.value) }));
    $("volume").addEventListener("change", ev => ask({ do: "volume", percent: Number(ev.target.value) }));
    $("number").addEventListener("keydown", ev => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        primary();
      }
    });
  }

  // A kiosk has no browser menu and no clipboard: a right click opens nothing, a middle click
  // pastes nothing; a click beside the controls leaves the keyboard where it was (the number).
  document.addEventListener("contextmenu", ev => ev.preventDefault());
  document.addEventListener("auxclick", ev => ev.preventDefault());
  document.addEventListener("mousedown", ev => {
    if (ev.button !== 0 || !ev.target.closest("button, input, select, label")) ev.preventDefault();
  });

  // Keys anywhere on the page: digits dial (or send tones in a call), Enter calls or
  // answers, Escape hangs up or rejects, M mutes, H holds.
  document.addEventListener("keydown", ev => {
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    const typing = document.activeElement === $("number") && !$("number").disabled;
    // The sound controls take their own keys (arrows, letters); Escape still hangs up.
    const sound = ["output", "input", "volume"].includes(document.activeElement.id);
    if ((typing || sound) && ev.key !== "Escape") return;
    const k = ev.key;
    if (/^[0-9*#+]$/.test(k)) key(k);
    else if (k === "Enter" && document.activeElement.tagName !== "BUTTON") primary();
    else if (k === "Escape") stop();
    else if (k === "Backspace" && !call()) $("number").value = $("number").value.slice(0, -1);
    else if ((k === "m" || k === "M") && state() === "connected") ask({ do: "mute", on: !call().muted });
    else if ((k === "h" || k === "H") && state() === "connected") ask({ do: "hold", on: !call().held });
    else return;
    ev.preventDefault();
  });

  function labels() {
    label($("answer"), "Annehmen (Enter)", "Answer (Enter)");
    label($("reject"), "Ablehnen (Esc)", "Reject (Esc)");
    label($("hangup"), "Auflegen (Esc)", "Hang up (Esc)");
    label($("mute"), "Stumm (M)", "Mute (M)");
    label($("hold"), "Halten (H)", "Hold (H)");
    label($("dial"), "Anrufen (Enter)", "Call (Enter)");
    $("keys").textContent = say(
      "Tastatur: Ziffern wählen · Enter anrufen/annehmen · Esc auflegen · M stumm · H halten",
      "Keyboard: digits dial · Enter call/answer · Esc hang up · M mute · H hold");
  }

  function connect() {
    const es = new EventSource("/events?token=" + encodeURIComponent(TOKEN));
    es.onmessage = ev => {
      const v = JSON.parse(ev.data);
      skew = v.now - Date.now() / 1000;
      render(v);
      labels();
    };
    es.onerror = () => {
      chip($("chip-sip"), "bad", "Telefon", "Phone");
      $("status-text").textContent = say("Verbindung zur Sitzung unterbrochen, neuer Versuch …",
                                         "Lost the session, trying again …");
    };
  }

  buildPad();
  labels();
  setInterval(tick, 1000);
  connect();
  $("number").focus();
})();
