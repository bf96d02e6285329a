// slotguard booking page: pick an open slot, hold it, pay with Stripe
// Checkout, and come back to see (and cancel) the booking. Plain browser
// JavaScript, no build step, no dependencies.
//
// Embedding: a container element with `data-slotguard-booking`, and on it
// (or on this script's tag) `data-resource` (the resource id) and
// `data-api` (the API's base URL; empty or absent: this page's origin).
//
// The reservation secret the hold answers is kept in sessionStorage under
// `slotguard:secret:{reservation_id}` and sent only as a bearer token; it is
// never put in a URL. The success and cancel URLs carry the reservation id.
(function () {
  "use strict";

  var script = document.currentScript;
  var RESOURCE_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
  var TAKEN = ["slot_taken", "sold_out", "day_full", "host_busy"];
  var WAITING = ["held", "payment_pending", "cancelling"];
  var DAYS_PER_PAGE = 7;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function uuid() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function iso(date) { return date.toISOString().replace(/\.\d{3}Z$/, "Z"); }

  function money(amount, currency) {
    var code = String(currency || "").toUpperCase();
    try {
      var f = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
      var digits = f.resolvedOptions().maximumFractionDigits;
      return f.format(amount / Math.pow(10, digits));
    } catch (e) {
      return (amount / 100).toFixed(2) + " " + code;
    }
  }

  var dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var fullFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "long", day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  var visitorZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";

  function localDayKey(d) { return d.getFullYear() + "-" + (d.getMonth() + 1) + "-" + d.getDate(); }
  function startOfLocalDay(d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()); }
  function addLocalDays(d, n) { return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n); }

  // --- iCalendar (RFC 5545) ---------------------------------------------------

  function icsDate(d) { return iso(d).replace(/[-:]/g, ""); }
  function icsText(s) { return String(s).replace(/\\/g, "\\\\").replace(/;/g, "\\;").replace(/,/g, "\\,").replace(/\r?\n/g, "\\n"); }
  // Lines longer than 75 octets are folded (CRLF and one space), never inside a character.
  function icsFold(line) {
    var out = [], current = "", octets = 0, limit = 75;
    Array.from(line).forEach(function (ch) {
      var n = new TextEncoder().encode(ch).length;
      if (octets + n > limit) { out.push(current); current = " "; octets = 1; }
      current += ch; octets += n;
    });
    out.push(current);
    return out.join("\r\n");
  }
  function icsEvent(booking, summary) {
    var lines = [
      "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//slotguard//booking page//EN", "CALSCALE:GREGORIAN", "METHOD:PUBLISH",
      "BEGIN:VEVENT",
      "UID:" + booking.reservation_id + "@slotguard",
      "DTSTAMP:" + icsDate(new Date()),
      "DTSTART:" + icsDate(new Date(booking.start)),
      "DTEND:" + icsDate(new Date(booking.end)),
      "SUMMARY:" + icsText(summary),
      "STATUS:CONFIRMED",
      "END:VEVENT", "END:VCALENDAR",
    ];
    return lines.map(icsFold).join("\r\n") + "\r\n";
  }

  // --- The page -----------------------------------------------------------------

  function BookingPage(root) {
    this.root = root;
    var data = function (name) {
      return root.getAttribute("data-" + name) || (script && script.getAttribute("data-" + name)) || "";
    };
    this.resourceId = data("resource");
    this.api = data("api").replace(/\/+$/, "");
    this.resource = null;
    this.offset = 0;
    this.selected = null;
    this.pollTimer = null;
  }

  BookingPage.prototype.request = function (method, path, options) {
    options = options || {};
    var headers = { accept: "application/json" };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    if (options.secret) headers.authorization = "Bearer " + options.secret;
    if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
    return fetch(this.api + path, {
      method: method,
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
      credentials: "omit",
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (res.ok) return { ok: true, status: res.status, data: body };
        var problem = body && typeof body === "object" ? body : {};
        if (!problem.title) problem.title = "The request failed (HTTP " + res.status + ")";
        return { ok: false, status: res.status, problem: problem };
      });
    }, function () {
      return { ok: false, status: 0, problem: { title: "Network error", detail: "The booking service could not be reached. Check your connection and try again." } };
    });
  };

  BookingPage.prototype.secretKey = function (id) { return "slotguard:secret:" + id; };
  BookingPage.prototype.saveSecret = function (id, secret) {
    try { sessionStorage.setItem(this.secretKey(id), secret); } catch (e) { this.memorySecret = [id, secret]; }
  };
  BookingPage.prototype.loadSecret = function (id) {
    try { var s = sessionStorage.getItem(this.secretKey(id)); if (s) return s; } catch (e) { /* storage blocked */ }
    return this.memorySecret && this.memorySecret[0] === id ? this.memorySecret[1] : null;
  };

  // This page's URL without our parameters, plus `extra`. `{RESERVATION_ID}`
  // is appended as text: URL objects would percent-encode its braces.
  BookingPage.prototype.pageUrl = function (extra) {
    var u = new URL(window.location.href);
    u.hash = "";
    u.searchParams.delete("reservation");
    u.searchParams.delete("cancelled");
    var s = u.toString();
    return extra ? s + (u.search ? "&" : "?") + extra : s;
  };

  BookingPage.prototype.build = function () {
    this.root.textContent = "";
    this.heading = el("h2", { text: "Loading…" });
    this.meta = el("p", { class: "sg-meta" });
    this.alert = el("div", { class: "sg-alert", role: "alert", id: "sg-alert" });
    this.status = el("div", { class: "sg-status", role: "status", "aria-live": "polite", id: "sg-status" });
    this.body = el("div", { class: "sg-body" });
    [this.heading, this.meta, this.alert, this.status, this.body].forEach(this.root.appendChild, this.root);
  };

  BookingPage.prototype.say = function (text) { this.status.textContent = text || ""; };
  BookingPage.prototype.warn = function (text) { this.alert.textContent = text || ""; };
  BookingPage.prototype.warnProblem = function (problem) {
    this.warn(problem.detail ? problem.title + ": " + problem.detail : problem.title);
  };

  BookingPage.prototype.start = function () {
    this.build();
    if (!RESOURCE_ID.test(this.resourceId)) {
      this.heading.textContent = "Booking unavailable";
      this.warn("This page is not set up: data-resource must name a resource (a-z, 0-9 and '-').");
      return;
    }
    var self = this;
    this.request("GET", "/v1/resources/" + encodeURIComponent(this.resourceId)).then(function (r) {
      if (!r.ok) {
        self.heading.textContent = "Booking unavailable";
        self.warnProblem(r.problem);
        return;
      }
      self.resource = r.data;
      self.heading.textContent = r.data.name;
      var params = new URLSearchParams(window.location.search);
      var reservation = params.get("reservation");
      if (reservation) self.showBooking(reservation, params.get("cancelled") === "1");
      else self.showPicker();
    });
  };

  // --- Picking a slot -------------------------------------------------------------

  BookingPage.prototype.showPicker = function () {
    var self = this, types = this.resource.booking_types || [];
    this.body.textContent = "";
    this.say("");
    if (!types.length) { this.warn("This resource offers nothing to book."); return; }
    var controls = el("div");
    if (types.length > 1) {
      this.typeSelect = el("select", { id: "sg-type", name: "type" });
      types.forEach(function (t) { self.typeSelect.appendChild(el("option", { value: t.id, text: t.name || t.id })); });
      controls.appendChild(el("div", { class: "sg-field" }, [el("label", { for: "sg-type", text: "What to book" }), this.typeSelect]));
      this.typeSelect.addEventListener("change", function () { self.fillDurations(); self.loadSlots(); });
    }
    this.durationField = el("div", { class: "sg-field" });
    controls.appendChild(this.durationField);
    this.body.appendChild(controls);

    this.earlier = el("button", { type: "button", class: "sg-secondary", id: "sg-earlier", text: "Earlier days" });
    this.later = el("button", { type: "button", class: "sg-secondary", id: "sg-later", text: "Later days" });
    this.range = el("span", { class: "sg-range", id: "sg-range" });
    this.earlier.addEventListener("click", function () { self.offset = Math.max(0, self.offset - DAYS_PER_PAGE); self.loadSlots(); });
    this.later.addEventListener("click", function () { self.offset += DAYS_PER_PAGE; self.loadSlots(); });
    this.body.appendChild(el("div", { class: "sg-pager" }, [this.earlier, this.range, this.later]));
    this.days = el("div", { class: "sg-days", id: "sg-days", "aria-busy": "false" });
    this.body.appendChild(this.days);

    this.selectedText = el("p", { id: "sg-selected", text: "No time picked yet." });
    this.nameInput = el("input", { id: "sg-name", name: "name", type: "text", autocomplete: "name", required: "", maxlength: "200" });
    this.emailInput = el("input", { id: "sg-email", name: "email", type: "email", autocomplete: "email", required: "", maxlength: "254" });
    this.submit = el("button", { type: "submit", id: "sg-hold", text: "Hold and pay" });
    this.form = el("form", { class: "sg-form", id: "sg-form", novalidate: "" }, [
      el("h3", { text: "Your details" }),
      this.selectedText,
      el("div", { class: "sg-field" }, [el("label", { for: "sg-name", text: "Name" }), this.nameInput]),
      el("div", { class: "sg-field" }, [el("label", { for: "sg-email", text: "E-mail" }), this.emailInput]),
      el("div", { class: "sg-actions" }, [this.submit]),
    ]);
    this.form.addEventListener("submit", function (e) { e.preventDefault(); self.hold(); });
    this.body.appendChild(this.form);
    this.fillDurations();
    this.loadSlots();
  };

  BookingPage.prototype.currentType = function () {
    var types = this.resource.booking_types;
    var id = this.typeSelect ? this.typeSelect.value : types[0].id;
    return types.filter(function (t) { return t.id === id; })[0] || types[0];
  };

  BookingPage.prototype.fillDurations = function () {
    var self = this, type = this.currentType();
    this.durationField.textContent = "";
    this.durationSelect = null;
    if (type.durations.length > 1) {
      this.durationSelect = el("select", { id: "sg-duration", name: "duration" });
      type.durations.forEach(function (d) {
        self.durationSelect.appendChild(el("option", { value: String(d.minutes), text: d.minutes + " min · " + money(d.price.amount, d.price.currency) }));
      });
      this.durationSelect.addEventListener("change", function () { self.updateMeta(); self.loadSlots(); });
      this.durationField.appendChild(el("label", { for: "sg-duration", text: "Length" }));
      this.durationField.appendChild(this.durationSelect);
    }
    this.updateMeta();
  };

  BookingPage.prototype.currentDuration = function () {
    var type = this.currentType(), minutes = this.durationSelect ? Number(this.durationSelect.value) : type.durations[0].minutes;
    return type.durations.filter(function (d) { return d.minutes === minutes; })[0] || type.durations[0];
  };

  BookingPage.prototype.updateMeta = function () {
    var type = this.currentType(), d = this.currentDuration();
    var name = this.resource.booking_types.length > 1 ? (type.name || type.id) + " · " : "";
    this.meta.textContent = name + d.minutes + " min · " + money(d.price.amount, d.price.currency) + " · times in " + visitorZone;
  };

  BookingPage.prototype.loadSlots = function () {
    var self = this, type = this.currentType(), duration = this.currentDuration();
    var from = addLocalDays(startOfLocalDay(new Date()), this.offset);
    var to = addLocalDays(from, DAYS_PER_PAGE);
    var path = "/v1/resources/" + encodeURIComponent(this.resourceId) + "/slots?from=" + encodeURIComponent(iso(from)) +
      "&to=" + encodeURIComponent(iso(to)) + "&type=" + encodeURIComponent(type.id) + "&duration=" + duration.minutes;
    this.selectSlot(null);
    this.earlier.disabled = this.offset === 0;
    this.range.textContent = dayFormat.format(from) + " – " + dayFormat.format(addLocalDays(to, -1));
    this.days.setAttribute("aria-busy", "true");
    var ticket = (this.ticket = (this.ticket || 0) + 1);
    return this.request("GET", path).then(function (r) {
      if (ticket !== self.ticket) return;
      self.days.setAttribute("aria-busy", "false");
      self.days.textContent = "";
      if (!r.ok) { self.warnProblem(r.problem); return; }
      self.renderDays(r.data.slots || []);
    });
  };

  BookingPage.prototype.renderDays = function (slots) {
    var self = this, groups = [], byDay = {};
    slots.forEach(function (slot) {
      var start = new Date(slot.start), key = localDayKey(start);
      if (!byDay[key]) { byDay[key] = { date: start, slots: [] }; groups.push(byDay[key]); }
      byDay[key].slots.push(slot);
    });
    if (!groups.length) {
      this.days.appendChild(el("p", { class: "sg-empty", text: "No open times on these days. Try later days." }));
      this.say("No open times on these days.");
      return;
    }
    groups.forEach(function (g, i) {
      var headingId = "sg-day-" + i, list = el("div", { class: "sg-slots", role: "group", "aria-labelledby": headingId });
      g.slots.forEach(function (slot) {
        var start = new Date(slot.start), end = new Date(slot.end);
        var label = dayFormat.format(start) + ", " + timeFormat.format(start) + " to " + timeFormat.format(end);
        if (slot.seats_left) label += ", " + slot.seats_left + " seats left";
        var b = el("button", { type: "button", class: "sg-slot", "aria-pressed": "false", "aria-label": label, "data-start": slot.start, text: timeFormat.format(start) });
        b.addEventListener("click", function () { self.selectSlot(slot, b); });
        list.appendChild(b);
      });
      self.days.appendChild(el("section", { class: "sg-day" }, [el("h3", { id: headingId, text: dayFormat.format(g.date) }), list]));
    });
    this.say(slots.length + (slots.length === 1 ? " open time" : " open times") + " shown.");
  };

  BookingPage.prototype.selectSlot = function (slot, button) {
    this.selected = slot;
    Array.prototype.forEach.call(this.root.querySelectorAll(".sg-slot[aria-pressed='true']"), function (b) { b.setAttribute("aria-pressed", "false"); });
    if (!slot) { if (this.selectedText) this.selectedText.textContent = "No time picked yet."; return; }
    button.setAttribute("aria-pressed", "true");
    this.selectedText.textContent = "Picked: " + fullFormat.format(new Date(slot.start));
    this.warn("");
    this.say("Picked " + fullFormat.format(new Date(slot.start)) + ". Enter your name and e-mail, then hold and pay.");
  };

  BookingPage.prototype.hold = function () {
    var self = this;
    this.warn("");
    if (!this.selected) { this.warn("Pick a time first."); return; }
    var name = this.nameInput.value.trim(), email = this.emailInput.value.trim();
    if (!name) { this.warn("Please enter your name."); this.nameInput.focus(); return; }
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) { this.warn("Please enter a valid e-mail address."); this.emailInput.focus(); return; }
    var type = this.currentType(), duration = this.currentDuration(), slot = this.selected;
    this.submit.disabled = true;
    // Held already, but checkout failed: try checkout again rather than
    // holding anew (the new hold would collide with our own).
    var held = this.held;
    if (held && held.start === slot.start && held.type === type.id && held.minutes === duration.minutes && held.until > Date.now()) {
      this.say("Taking you to payment…");
      this.checkout(held.id).then(function (ok) { if (!ok) self.submit.disabled = false; });
      return;
    }
    this.say("Holding your time…");
    this.request("POST", "/v1/reservations", {
      idempotencyKey: uuid(),
      body: { resource_id: this.resourceId, start: slot.start, booking_type: type.id, duration_minutes: duration.minutes, customer: { name: name, email: email } },
    }).then(function (r) {
      if (!r.ok) {
        self.submit.disabled = false;
        self.say("");
        if (r.status === 409 && TAKEN.indexOf(r.problem.type) >= 0) {
          self.warn("That time was just taken — please pick another.");
          self.loadSlots();
        } else {
          self.warnProblem(r.problem);
        }
        return;
      }
      var hold = r.data;
      self.saveSecret(hold.reservation_id, hold.reservation_secret);
      self.held = { id: hold.reservation_id, start: slot.start, type: type.id, minutes: duration.minutes, until: Date.parse(hold.expires_at) };
      self.say("Held until " + timeFormat.format(new Date(hold.expires_at)) + ". Taking you to payment…");
      self.checkout(hold.reservation_id).then(function (ok) { if (!ok) self.submit.disabled = false; });
    });
  };

  // Creates (or gets again) the Checkout Session and sends the browser there.
  BookingPage.prototype.checkout = function (id) {
    var self = this, secret = this.loadSecret(id);
    return this.request("POST", "/v1/reservations/" + encodeURIComponent(id) + "/checkout", {
      secret: secret,
      body: { success_url: this.pageUrl("reservation={RESERVATION_ID}"), cancel_url: this.pageUrl("reservation={RESERVATION_ID}&cancelled=1") },
    }).then(function (r) {
      if (!r.ok) { self.say(""); self.warnProblem(r.problem); return false; }
      window.location.assign(r.data.checkout_url);
      return true;
    });
  };

  // --- After checkout -------------------------------------------------------------

  BookingPage.prototype.showBooking = function (id, cancelledCheckout) {
    var self = this;
    this.reservationId = id;
    this.secret = this.loadSecret(id);
    this.meta.textContent = "Times in " + visitorZone;
    this.body.textContent = "";
    this.details = el("dl", { class: "sg-details", id: "sg-details" });
    this.actions = el("div", { class: "sg-actions", id: "sg-actions" });
    this.again = el("a", { class: "sg-button sg-secondary", href: this.pageUrl(""), id: "sg-again", text: "Book another time" });
    this.body.appendChild(el("h3", { text: "Your booking" }));
    [this.details, this.actions, el("p", {}, [this.again])].forEach(this.body.appendChild, this.body);
    if (!this.secret) this.say("This browser does not hold this reservation's key, so only its status is shown.");
    this.cancelledCheckout = cancelledCheckout;
    this.polls = 0;
    this.poll();
  };

  BookingPage.prototype.poll = function () {
    var self = this;
    clearTimeout(this.pollTimer);
    this.request("GET", "/v1/reservations/" + encodeURIComponent(this.reservationId), { secret: this.secret }).then(function (r) {
      if (!r.ok) { self.warnProblem(r.problem); return; }
      self.polls += 1;
      self.render(r.data);
      var waiting = WAITING.indexOf(r.data.status) >= 0 && !(r.data.status === "held" && self.cancelledCheckout);
      if (waiting) self.pollTimer = setTimeout(function () { self.poll(); }, self.polls < 60 ? 1000 : 5000);
    });
  };

  BookingPage.prototype.render = function (booking) {
    var self = this, rows = [["Status", booking.status], ["When", fullFormat.format(new Date(booking.start))], ["Until", fullFormat.format(new Date(booking.end))]];
    if (booking.amount !== undefined) rows.push(["Price", money(booking.amount, booking.currency)]);
    this.details.textContent = "";
    this.details.setAttribute("data-status", booking.status);
    rows.forEach(function (row) { self.details.appendChild(el("dt", { text: row[0] })); self.details.appendChild(el("dd", { text: row[1] })); });
    this.actions.textContent = "";
    var messages = {
      held: this.cancelledCheckout
        ? "Payment was not completed. The time stays held for you until " + (booking.expires_at ? timeFormat.format(new Date(booking.expires_at)) : "the hold ends") + "."
        : "Waiting for the payment to be confirmed…",
      payment_pending: "Your payment is being processed. The time is kept for you; this page updates when it settles.",
      confirmed: "Your booking is confirmed.",
      cancelling: "Your cancellation is under way.",
      cancelled: "This booking is cancelled.",
      refunded: "Your payment arrived after this time was no longer available, so it has been refunded. Please book another time.",
      released: "The checkout ended without a payment, so this time was released. You have not been charged.",
      expired: "The hold ran out before payment, so this time was released. You have not been charged.",
    };
    this.say(messages[booking.status] || "Status: " + booking.status);
    if (booking.status === "held" && this.cancelledCheckout && this.secret) {
      var pay = el("button", { type: "button", id: "sg-pay", text: "Pay now" });
      pay.addEventListener("click", function () { pay.disabled = true; self.checkout(self.reservationId).then(function (ok) { if (!ok) pay.disabled = false; }); });
      this.actions.appendChild(pay);
    }
    if (booking.status === "confirmed") this.actions.appendChild(this.icsLink(booking));
    if ((booking.status === "confirmed" || booking.status === "cancelling") && this.secret) {
      var cancel = el("button", { type: "button", class: "sg-secondary", id: "sg-cancel", text: "Cancel booking" });
      cancel.addEventListener("click", function () { self.confirmCancel(); });
      this.actions.appendChild(cancel);
    }
  };

  BookingPage.prototype.icsLink = function (booking) {
    var summary = this.resource ? this.resource.name : "Booking";
    var blob = new Blob([icsEvent(booking, summary)], { type: "text/calendar;charset=utf-8" });
    if (this.icsUrl) URL.revokeObjectURL(this.icsUrl);
    this.icsUrl = URL.createObjectURL(blob);
    return el("a", { class: "sg-button", id: "sg-ics", href: this.icsUrl, download: "booking-" + booking.reservation_id + ".ics", text: "Add to calendar (.ics)" });
  };

  // Two steps, so a stray tap does not cancel a paid booking.
  BookingPage.prototype.confirmCancel = function () {
    var self = this;
    this.actions.textContent = "";
    var yes = el("button", { type: "button", class: "sg-danger", id: "sg-cancel-confirm", text: "Yes, cancel my booking" });
    var no = el("button", { type: "button", class: "sg-secondary", id: "sg-cancel-keep", text: "Keep it" });
    yes.addEventListener("click", function () { self.cancel(yes, no); });
    no.addEventListener("click", function () { self.poll(); });
    this.actions.appendChild(yes);
    this.actions.appendChild(no);
    this.say("Cancel this booking? The refund follows the cancellation policy.");
    yes.focus();
  };

  BookingPage.prototype.cancel = function (yes, no) {
    var self = this;
    yes.disabled = no.disabled = true;
    this.warn("");
    this.say("Cancelling…");
    this.request("POST", "/v1/bookings/" + encodeURIComponent(this.reservationId) + "/cancel", { secret: this.secret }).then(function (r) {
      if (!r.ok) {
        self.warnProblem(r.problem);
        self.poll();
        return;
      }
      if (self.icsUrl) { URL.revokeObjectURL(self.icsUrl); self.icsUrl = null; }
      self.actions.textContent = "";
      self.details.setAttribute("data-status", "cancelled");
      var dd = self.details.querySelector("dd");
      if (dd) dd.textContent = "cancelled";
      var refund = r.data.refunded > 0 ? "Refunded: " + money(r.data.refunded, r.data.currency) + "." : "No refund is due under the cancellation policy.";
      self.say("Your booking is cancelled. " + refund);
    });
  };

  // Back from Stripe with the browser's back button: the page may come from
  // the back-forward cache with its buttons disabled and its slots stale.
  window.addEventListener("pageshow", function (e) { if (e.persisted) window.location.reload(); });

  function boot() {
    var root = document.querySelector("[data-slotguard-booking]");
    if (!root) return;
    new BookingPage(root).start();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
