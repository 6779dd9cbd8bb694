/** The export's 404.html, without the inline styles of Next's default page (the CSP forbids them). */
export default function NotFound() {
  return (
    <main>
      <h1>Not found</h1>
      <p>
        There is no such page. <a href="/">Back to the chat</a>.
      </p>
    </main>
  );
}
