// KB editor: log in, list and search articles, edit (every save is a new draft version), publish, roll back,
// and work through the unanswered-questions inbox. Every piece of text from the server is inserted with
// textContent: nothing an editor or a customer typed ever runs as HTML.
(function () {
  "use strict";
  const TOKEN_KEY = "warmline.editor_token";
  const ui = window.warmlineUI;
  const $ = ui.$, el = ui.el, show = ui.show;
  const state = { token: sessionStorage.getItem(TOKEN_KEY), articles: [], allArticles: [], current: null, isNew: false };

  function fail(text) { show("app-notice", ""); show("app-error", text); }
  function notice(text) { show("app-error", ""); show("app-notice", text); }
  function lines(text) { return text.split("\n").map(function (l) { return l.trim(); }).filter(Boolean); }

  // One place for every API call: bearer token, JSON both ways, the {error: {code, message}} shape.
  async function api(method, path, body) {
    const token = state.token;
    const reply = await ui.request(method, "/api/kb" + path, { token: token, body: body || undefined });
    if (reply.status === 401) {
      // Only a refusal of the current login logs out; a late answer to a request from before logging in does not.
      if (token === state.token) logout("Your login has expired; log in again.");
      throw new Error("unauthorized");
    }
    const data = reply.data;
    if (!reply.ok) {
      const message = ui.errorMessage(data, "Request failed (" + reply.status + ")");
      fail(message);
      throw new Error(message);
    }
    show("app-error", "");
    if (data && data.revision != null) $("revision").textContent = "KB revision " + data.revision;
    return data;
  }

  // ---------------------------------------------------------------------------------------------- login
  async function login(event) {
    event.preventDefault();
    show("login-error", "");
    const reply = await ui.login($("username").value, $("password").value);
    if (!reply.ok) { show("login-error", reply.message); return; }
    if (reply.agent.role !== "editor" && reply.agent.role !== "admin") {
      show("login-error", "Editing the knowledge base needs the editor or admin role."); return;
    }
    state.token = reply.token;
    sessionStorage.setItem(TOKEN_KEY, reply.token);
    $("me").textContent = reply.agent.name;
    start();
  }

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    $("app").hidden = true; $("login").hidden = false;
    show("login-error", message || "");
  }

  async function start() {
    $("login").hidden = true; $("app").hidden = false;
    await loadArticles();
    await loadInbox();
  }

  function selectTab(name) {
    document.querySelectorAll(".tab").forEach(function (tab) { tab.classList.toggle("active", tab.dataset.tab === name); });
    ["articles", "inbox", "transfer"].forEach(function (tab) { $("tab-" + tab).hidden = tab !== name; });
    if (name === "inbox") loadInbox();
  }

  // ---------------------------------------------------------------------------------------------- articles
  async function loadArticles() {
    const params = new URLSearchParams();
    if ($("search").value.trim()) params.set("q", $("search").value.trim());
    if ($("status-filter").value) params.set("status", $("status-filter").value);
    const data = await api("GET", "/articles?" + params.toString());
    state.articles = data.articles;
    renderList();
  }

  function renderList() {
    const list = $("article-list");
    list.replaceChildren();
    state.articles.forEach(function (a) {
      const item = el("li", state.current && state.current.id === a.id ? "active" : "");
      item.append(el("strong", null, a.title));
      const flags = [a.id, a.status + (a.has_unpublished_changes && a.status === "published" ? ", unpublished changes" : ""), a.questions.length + " questions"];
      item.append(el("small", null, flags.join(" · ")));
      item.addEventListener("click", function () { openArticle(a.id); });
      list.append(item);
    });
  }

  function fillForm(a) {
    $("f-id").value = a ? a.id : "";
    $("f-title").value = a ? a.title : "";
    $("f-answer").value = a ? a.answer : "";
    $("f-questions").value = a ? a.questions.join("\n") : "";
    $("f-tags").value = a ? a.tags.join(", ") : "";
    $("f-team").value = a ? a.team : "support";
    $("f-human").checked = a ? a.always_human : false;
  }

  async function openArticle(id) {
    const data = await api("GET", "/articles/" + encodeURIComponent(id));
    showArticle(data.article, data.versions);
  }

  function showArticle(article, versions) {
    state.current = article; state.isNew = false;
    $("article").hidden = false;
    $("id-label").hidden = true;
    $("f-id").required = false;
    $("article-heading").textContent = article.title;
    const status = article.status === "published"
      ? "published v" + article.published_version + (article.has_unpublished_changes ? " · draft v" + article.latest_version + " not live" : "")
      : "draft v" + article.latest_version;
    $("article-status").textContent = status;
    $("article-status").className = "pill " + article.status;
    $("publish").hidden = false; $("unpublish").hidden = article.status !== "published";
    $("add-questions-form").hidden = false;
    fillForm(article);
    renderVersions(versions || []);
    renderList();
  }

  function newArticle(prefill) {
    state.current = null; state.isNew = true;
    $("article").hidden = false;
    $("id-label").hidden = false; $("f-id").required = true;
    $("article-heading").textContent = "New article";
    $("article-status").textContent = "not saved"; $("article-status").className = "pill";
    $("publish").hidden = true; $("unpublish").hidden = true;
    $("add-questions-form").hidden = true;
    fillForm(prefill || null);
    $("versions").replaceChildren();
    selectTab("articles");
    renderList();
  }

  function formContent() {
    return {
      title: $("f-title").value.trim(),
      answer: $("f-answer").value.trim(),
      questions: lines($("f-questions").value),
      tags: $("f-tags").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean),
      team: $("f-team").value.trim() || "support",
      always_human: $("f-human").checked,
    };
  }

  async function save(event) {
    event.preventDefault();
    let data;
    if (state.isNew) {
      data = await api("POST", "/articles", Object.assign({ id: $("f-id").value.trim() }, formContent()));
      notice("Saved as a draft (version 1). Publish it to make it live.");
    } else {
      data = await api("PUT", "/articles/" + encodeURIComponent(state.current.id), formContent());
      notice("Saved as draft version " + data.article.latest_version + ". Publish it to make it live.");
    }
    await loadArticles();
    await openArticle(data.article.id);
  }

  async function publish() {
    const data = await api("POST", "/articles/" + encodeURIComponent(state.current.id) + "/publish", {});
    notice("Version " + data.article.published_version + " is live; the bot answers with it within seconds.");
    await loadArticles(); await openArticle(data.article.id);
  }

  async function unpublish() {
    const data = await api("POST", "/articles/" + encodeURIComponent(state.current.id) + "/unpublish", {});
    notice("Unpublished: the bot no longer answers with this article.");
    await loadArticles(); await openArticle(data.article.id);
  }

  async function addQuestions(event) {
    event.preventDefault();
    const questions = lines($("more-questions").value);
    if (!questions.length) return;
    const data = await api("POST", "/articles/" + encodeURIComponent(state.current.id) + "/questions", { questions: questions });
    $("more-questions").value = "";
    notice("Added as draft version " + data.article.latest_version + ".");
    await loadArticles(); await openArticle(data.article.id);
  }

  function renderVersions(versions) {
    const list = $("versions");
    list.replaceChildren();
    versions.forEach(function (v) {
      const item = el("li");
      const head = el("div");
      head.append(el("strong", null, "v" + v.number + (v.published ? " (live)" : "")));
      const meta = [new Date(v.created_at).toLocaleString(), v.author || "import", v.note || ""].filter(Boolean).join(" · ");
      head.append(document.createTextNode(" "), el("small", "muted", meta));
      item.append(head, el("div", null, v.title), el("div", "answer", v.answer), el("small", "muted", v.questions.length + " example questions"));
      if (!v.published) {
        const button = el("button", "secondary", "Roll back to v" + v.number);
        button.type = "button";
        button.addEventListener("click", function () { rollback(v.number); });
        item.append(button);
      }
      list.append(item);
    });
  }

  async function rollback(number) {
    const data = await api("POST", "/articles/" + encodeURIComponent(state.current.id) + "/rollback", { version: number });
    notice("Rolled back: v" + number + "'s content is live again as v" + data.article.published_version + ".");
    await loadArticles(); await openArticle(data.article.id);
  }

  // ---------------------------------------------------------------------------------------------- inbox
  async function loadInbox() {
    const data = await api("GET", "/inbox");
    // Every article is a possible target, whatever the article list is filtered to right now.
    state.allArticles = (await api("GET", "/articles")).articles;
    $("inbox-count").textContent = String(data.groups.length);
    const list = $("groups");
    list.replaceChildren();
    if (!data.groups.length) list.append(el("li", "muted", "Nothing unanswered. Well done."));
    data.groups.forEach(function (group) { list.append(renderGroup(group)); });
  }

  function renderGroup(group) {
    const item = el("li");
    item.append(el("strong", null, group.label));
    item.append(el("small", "muted", group.size + " question(s) · " + group.reasons.join(", ") + " · last " + new Date(group.last_asked).toLocaleString()));
    const questions = el("ul");
    const boxes = [];
    group.questions.forEach(function (q) {
      const label = el("label", "check");
      const box = el("input"); box.type = "checkbox"; box.checked = true; box.value = String(q.id);
      boxes.push(box);
      label.append(box, document.createTextNode(q.text));
      const li = el("li"); li.append(label); questions.append(li);
    });
    item.append(questions);
    function chosen() { return boxes.filter(function (b) { return b.checked; }).map(function (b) { return Number(b.value); }); }

    const actions = el("div", "group__actions");
    // New article from this group: id, title, answer here; the checked questions become its examples.
    const create = el("form");
    create.append(el("strong", null, "New article from this group"));
    const id = el("input"); id.placeholder = "id (slug)"; id.required = true; id.pattern = "[a-z0-9][a-z0-9\\-]{0,62}";
    const title = el("input"); title.placeholder = "Title"; title.required = true;
    const answer = el("textarea"); answer.placeholder = "Answer (Markdown)"; answer.rows = 3; answer.required = true;
    const createButton = el("button", null, "Create draft article"); createButton.type = "submit";
    create.append(id, title, answer, createButton);
    create.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = await api("POST", "/inbox/new-article", {
        question_ids: chosen(), id: id.value.trim(), title: title.value.trim(), answer: answer.value.trim(),
      });
      notice("Draft article " + data.article.id + " created from the group. Review and publish it.");
      await loadArticles(); await loadInbox(); selectTab("articles"); await openArticle(data.article.id);
    });

    // Add to an existing article, as example questions (a new draft version of it).
    const add = el("form");
    add.append(el("strong", null, "Add to article"));
    const select = el("select"); select.required = true;
    state.allArticles.forEach(function (a) { const o = el("option", null, a.title); o.value = a.id; select.append(o); });
    const publishToo = el("label", "check"); const pub = el("input"); pub.type = "checkbox";
    publishToo.append(pub, document.createTextNode("Publish at once"));
    const addButton = el("button", null, "Add as example questions"); addButton.type = "submit";
    const dismiss = el("button", "secondary", "Dismiss group"); dismiss.type = "button";
    add.append(select, publishToo, addButton, dismiss);
    add.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = await api("POST", "/inbox/add-to-article", { question_ids: chosen(), article_id: select.value, publish: pub.checked });
      notice("Added to " + data.article.title + " (v" + data.article.latest_version + (pub.checked ? ", live" : ", draft") + ").");
      await loadArticles(); await loadInbox();
    });
    dismiss.addEventListener("click", async function () {
      await api("POST", "/inbox/dismiss", { question_ids: chosen() });
      notice("Dismissed."); await loadInbox();
    });
    actions.append(create, add);
    item.append(actions);
    return item;
  }

  // ---------------------------------------------------------------------------------------------- import/export
  async function importFile(event) {
    event.preventDefault();
    const file = $("import-file").files[0];
    if (!file) return;
    const content = await file.text();
    let format = $("import-format").value;
    if (!format) {
      const header = content.split("\n", 1)[0];
      format = /\.ya?ml$/i.test(file.name) ? "yaml" : (header.indexOf("instruction") >= 0 && header.indexOf("intent") >= 0 ? "bitext" : "csv");
    }
    $("import-result").textContent = "Importing…";
    try {
      const data = await api("POST", "/import", { format: format, content: content, publish: $("import-publish").checked });
      $("import-result").textContent = "Imported " + data.imported + " articles (" + data.questions + " questions): " +
        data.created.length + " new, " + data.updated.length + " updated, " + data.unchanged.length + " unchanged" +
        (data.published ? ", published." : ", as drafts.");
      await loadArticles();
    } catch (e) {
      $("import-result").textContent = "Nothing was changed.";
    }
  }

  async function exportKB(event) {
    const format = event.target.dataset.export;
    const drafts = event.target.dataset.drafts ? "&drafts=1" : "";
    const text = await api("GET", "/export?format=" + format + drafts);
    const blob = new Blob([text], { type: format === "csv" ? "text/csv" : "application/yaml" });
    const link = el("a"); link.href = URL.createObjectURL(blob); link.download = "warmline-kb." + (format === "csv" ? "csv" : "yml");
    document.body.append(link); link.click(); link.remove();
  }

  // ---------------------------------------------------------------------------------------------- wiring
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", function () { logout(""); });
  document.querySelectorAll(".tab").forEach(function (tab) { tab.addEventListener("click", function () { selectTab(tab.dataset.tab); }); });
  let searchTimer = null;
  $("search").addEventListener("input", function () { clearTimeout(searchTimer); searchTimer = setTimeout(loadArticles, 200); });
  $("search-form").addEventListener("submit", function (event) { event.preventDefault(); loadArticles(); });
  $("status-filter").addEventListener("change", loadArticles);
  $("new-article").addEventListener("click", function () { newArticle(null); });
  $("article-form").addEventListener("submit", save);
  $("publish").addEventListener("click", publish);
  $("unpublish").addEventListener("click", unpublish);
  $("add-questions-form").addEventListener("submit", addQuestions);
  $("reload-inbox").addEventListener("click", loadInbox);
  $("import-form").addEventListener("submit", importFile);
  document.querySelectorAll("[data-export]").forEach(function (b) { b.addEventListener("click", exportKB); });
  if (state.token) start().catch(function () { /* a stale token lands on the login form */ });
})();
