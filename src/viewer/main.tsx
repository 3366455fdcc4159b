/** Browser entry point of the clinician and auditor viewer. */
import { createRoot } from 'react-dom/client';
import { App } from './app/App.tsx';
import './ui/styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
// No StrictMode: its double mount would create two Cornerstone rendering engines per viewport.
createRoot(root).render(<App />);
