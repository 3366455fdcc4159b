/** Browser entry point of the clinician and auditor viewer. */
import { createRoot } from 'react-dom/client';

function App() {
  return (
    <main>
      <h1>ZTV — zero-trust DICOM viewer</h1>
    </main>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
createRoot(root).render(<App />);
